{#- on_schema_change `fail` inside the incremental run's statement (macros/materialization_incremental.sql):
    a query that raises, naming each column whose presence or type differs between the new rows and the
    target, when the model's columns no longer match the table it adds to; no row, and so no error, when
    they match. -#}
{% macro incremental_columns_check(new_rows, target) %}
    select error(
        '{{ model.name }}: the model''s columns no longer match the table {{ target }} ('
        || string_agg(
            case
                when model_type is null then column_name || ' is in the table (' || table_type || '), not in the model'
                when table_type is null then column_name || ' is in the model (' || model_type || '), not in the table'
                else column_name || ' is ' || model_type || ' in the model, ' || table_type || ' in the table'
            end,
            '; ' order by column_name
        )
        || '). Rebuild it: dbt build --full-refresh -s {{ model.name }}'
    )
    from (
        select
            coalesce(model_columns.column_name, table_columns.column_name) as column_name,
            model_columns.data_type as model_type,
            table_columns.data_type as table_type
        from (
            select column_name, data_type from duckdb_columns()
            where database_name = 'temp' and table_name = '{{ new_rows | replace('"', '') }}'
        ) as model_columns
        full outer join (
            select column_name, data_type from duckdb_columns()
            where database_name = '{{ target.database }}' and schema_name = '{{ target.schema }}'
                and table_name = '{{ target.identifier }}'
        ) as table_columns on model_columns.column_name = table_columns.column_name
        where model_columns.data_type is distinct from table_columns.data_type
    ) as differences
    having count(*) > 0
{% endmacro %}
