{#- One condition of a segment (a `where:` filter on an event property or a `profile:` test), as a
    boolean that is never null. `value_sql` is the tested value: a dim_users column (kind text, number,
    bool or timestamp) or a JSON property as text (kind json, typed by the value it is compared with).
    A missing value fails every test except neq, not_in and not_exists, which it passes: a user without
    a city is "not in London". `number_sql`, when given, is the value already read as a number. -#}
{% macro segment_compare(value_sql, kind, condition, as_of_sql, number_sql=none) %}
    {%- set op = condition.op -%}
    {%- set value = condition.value -%}
    {%- set sql_ops = {'eq': '=', 'neq': '<>', 'gt': '>', 'gte': '>=', 'lt': '<', 'lte': '<='} -%}
    {%- if op == 'exists' -%}
        ({{ value_sql }} is not null)
    {%- elif op == 'not_exists' -%}
        ({{ value_sql }} is null)
    {%- else -%}
        {%- if op in ('older_than_days', 'within_days') -%}
            {%- set tested = value_sql if kind == 'timestamp' else segment_safe_timestamp(value_sql) -%}
            {%- set cutoff = dbt.dateadd('day', -1 * value, as_of_sql) -%}
            {#- (as-of minus N days, as-of] is within, as for an event rule's window; at or before is older -#}
            {%- if op == 'older_than_days' -%}
                {%- set test = tested ~ ' <= ' ~ cutoff -%}
            {%- else -%}
                {%- set test = tested ~ ' > ' ~ cutoff ~ ' and ' ~ tested ~ ' <= ' ~ as_of_sql -%}
            {%- endif -%}
        {%- elif op == 'contains' -%}
            {%- set test = 'strpos(' ~ value_sql ~ ', ' ~ segment_literal(value) ~ ') > 0' -%}
        {%- elif op == 'starts_with' -%}
            {%- set test = 'substr(' ~ value_sql ~ ', 1, ' ~ (value | length) ~ ') = ' ~ segment_literal(value) -%}
        {%- else -%}
            {%- set values = value if op in ('in', 'not_in') else [value] -%}
            {%- set sample = values[0] -%}
            {%- if sample is boolean -%}
                {%- set tested = value_sql if kind == 'bool' else 'lower(' ~ value_sql ~ ')' -%}
                {%- set literals = [] -%}
                {%- for v in values -%}
                    {%- do literals.append(segment_literal(v) if kind == 'bool' else segment_literal('true' if v else 'false')) -%}
                {%- endfor -%}
            {%- elif sample is number -%}
                {%- set tested = value_sql if kind == 'number' else (number_sql or segment_safe_number(value_sql)) -%}
                {%- set literals = values | map('string') | list -%}
            {%- elif op in ('gt', 'gte', 'lt', 'lte') or kind == 'timestamp' -%}
                {#- a date or date-time text: compared as a time -#}
                {%- set tested = value_sql if kind == 'timestamp' else segment_safe_timestamp(value_sql) -%}
                {%- set literals = [] -%}
                {%- for v in values -%}
                    {%- do literals.append('cast(' ~ segment_literal(v) ~ ' as timestamp)') -%}
                {%- endfor -%}
            {%- else -%}
                {%- set tested = value_sql -%}
                {%- set literals = [] -%}
                {%- for v in values -%}
                    {%- do literals.append(segment_literal(v)) -%}
                {%- endfor -%}
            {%- endif -%}
            {%- if op == 'in' -%}
                {%- set test = tested ~ ' in (' ~ literals | join(', ') ~ ')' -%}
            {%- elif op == 'not_in' -%}
                {%- set test = tested ~ ' not in (' ~ literals | join(', ') ~ ')' -%}
            {%- else -%}
                {%- set test = tested ~ ' ' ~ sql_ops[op] ~ ' ' ~ literals[0] -%}
            {%- endif -%}
        {%- endif -%}
        coalesce(({{ test }}), {{ 'true' if op in ('neq', 'not_in') else 'false' }})
    {%- endif -%}
{% endmacro %}
