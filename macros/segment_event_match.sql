{#- True for an event (alias `events`, with each property the rules read as a column named in `columns`)
    that an event rule of a segment counts: its name, its window
    relative to the as-of instant, and its `where:` filters. within_days N is the N days up to the
    as-of instant (after as-of minus N days, up to as-of); between is from the first day's midnight to
    the end of the last day; since is from the day's midnight. -#}
{% macro segment_event_match(leaf, as_of_sql, columns, numeric=[]) %}
    (
        events.event_name = {{ segment_literal(leaf.event) }}
        and events.event_at <= {{ as_of_sql }}
        {%- if leaf.within_days is defined %}
            and events.event_at > {{ dbt.dateadd('day', -1 * leaf.within_days, as_of_sql) }}
        {%- elif leaf.since is defined %}
            and events.event_at >= cast({{ segment_literal(leaf.since) }} as timestamp)
        {%- elif leaf.between is defined %}
            and events.event_at >= cast({{ segment_literal(leaf.between[0]) }} as timestamp)
            and events.event_at < {{ dbt.dateadd('day', 1, 'cast(' ~ segment_literal(leaf.between[1]) ~ ' as timestamp)') }}
        {%- endif %}
        {%- for filter in leaf.where %}
            {%- set number_sql = 'events.' ~ columns[filter.property] ~ '_number' if filter.property in numeric else none %}
            and {{ segment_compare('events.' ~ columns[filter.property], 'json', filter, as_of_sql, number_sql) }}
        {%- endfor %}
    )
{% endmacro %}
