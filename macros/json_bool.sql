{#- CleverTap flags arrive as JSON true/false, or as the strings "true"/"false"/"1"/"0";
    anything else is unknown (null), never a silent yes. -#}
{% macro json_bool(column, key_sql) %}
    case lower({{ json_text(column, key_sql) }})
        when 'true' then true
        when '1' then true
        when 'false' then false
        when '0' then false
    end
{% endmacro %}
