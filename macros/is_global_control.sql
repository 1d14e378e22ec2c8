{#- True when the user is in the system-wide control group: hash_bucket('global:' || user_id) below
    var rekindle_global_control_pct. loaders.generate.global_control_bucket and the senders compute the
    same bucket, and a user seen for the first time tomorrow gets one too: nothing is stored to reproduce it. -#}
{% macro is_global_control(user_id_sql) %}
    ({{ hash_bucket("'global:' || " ~ user_id_sql) }} < {{ global_control_pct() }})
{% endmacro %}
