{#- An identifier, trimmed, or null when it is junk that must never merge people: empty, only
    zeros and dashes ("0", "-", "000"), or a placeholder listed in var rekindle_junk_ids. -#}
{% macro clean_identifier(column) %}
    case
        when {{ column }} is null then null
        when replace(replace(trim({{ column }}), '0', ''), '-', '') = '' then null
        when lower(trim({{ column }})) in (
            {%- for junk in var('rekindle_junk_ids') %}'{{ junk | replace("'", "''") }}'{{ "," if not loop.last }}{% endfor -%}
        ) then null
        else trim({{ column }})
    end
{% endmacro %}
