{#- A deterministic bucket 0..buckets-1 from the first 32 bits of md5(text). Python computes the same
    number as int(hashlib.md5(text.encode()).hexdigest()[:8], 16) % buckets, so control groups
    assigned here match the sample-data generator and any sender that recomputes them. -#}
{% macro hash_bucket(text_sql, buckets=100) %}
    {{ return(adapter.dispatch('hash_bucket', 'rekindle')(text_sql, buckets)) }}
{% endmacro %}

{% macro default__hash_bucket(text_sql, buckets) %}
    (('x' || substr(md5({{ text_sql }}), 1, 8))::bit(32)::bigint % {{ buckets }})
{% endmacro %}

{% macro duckdb__hash_bucket(text_sql, buckets) %}
    (cast('0x' || substr(md5({{ text_sql }}), 1, 8) as bigint) % {{ buckets }})
{% endmacro %}
