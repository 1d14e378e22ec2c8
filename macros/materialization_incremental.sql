{#- Rekindle's incremental materialization on DuckDB: a run is one statement that builds the new rows in a
    temporary table, checks its columns against the target's, deletes the rows they replace and inserts
    them, then the docs and the commit. dbt-duckdb's own materialization does the same work in about twelve
    statements (temporary relation, two column-type expansions, a schema comparison, a column lookup for the
    insert, the strategy, the drop), and at 10M events dbt's Python around each statement cost more than
    the smaller models' SQL (DECISIONS.md, "Rekindle's own DuckDB materializations"). A first build, a full
    refresh or a view in the way is replaced by one `create or replace table` (macros/create_or_replace.sql).
    It covers what the project uses: SQL models, `delete+insert` or `append`, on_schema_change `fail` (set for
    every model in dbt_project.yml); anything else stops with an error that says so. Other engines keep dbt's
    own. -#}
{% materialization incremental, adapter='duckdb' %}
    {%- set strategy = config.get('incremental_strategy') or ('delete+insert' if config.get('unique_key') else 'append') -%}
    {%- set on_schema_change = config.get('on_schema_change') or 'ignore' -%}  {#- dbt's default -#}
    {%- set unsupported = [] -%}
    {%- if model.language != 'sql' -%}{% do unsupported.append(model.language ~ ' models') %}{%- endif -%}
    {%- if strategy not in ('delete+insert', 'append') -%}{% do unsupported.append("incremental_strategy '" ~ strategy ~ "'") %}{%- endif -%}
    {%- if on_schema_change != 'fail' -%}{% do unsupported.append("on_schema_change '" ~ on_schema_change ~ "'") %}{%- endif -%}
    {%- if config.get('contract').enforced -%}{% do unsupported.append('enforced contracts') %}{%- endif -%}
    {%- if config.get('predicates') or config.get('incremental_predicates') -%}{% do unsupported.append('incremental_predicates') %}{%- endif -%}
    {%- if unsupported -%}
        {{ exceptions.raise_compiler_error(
            model.name ~ ": Rekindle's DuckDB incremental materialization (macros/materialization_incremental.sql)"
            ~ " does not support " ~ unsupported | join(', ')
            ~ "; it supports SQL models with incremental_strategy delete+insert or append and on_schema_change"
            ~ " fail"
        ) }}
    {%- endif -%}

    {%- set existing = load_cached_relation(this) -%}
    {%- if existing is none or existing.is_view or should_full_refresh() -%}
        {{ return(create_or_replace('table')) }}
    {%- endif -%}

    {%- set target = this.incorporate(type='table') -%}
    {%- set new_rows = adapter.quote(this.identifier ~ '__dbt_new_rows') -%}
    {%- set unique_key = config.get('unique_key') if strategy == 'delete+insert' else none -%}
    {%- set keys = ([unique_key] if unique_key is string else unique_key) if unique_key else [] -%}

    {%- set main_sql -%}
        create or replace temporary table {{ new_rows }} as (
            {{ sql }}
        );
        {{ incremental_columns_check(new_rows, target) }};
        {%- if keys %}
        delete from {{ target }} as dbt_target
        where exists (
            select 1 from {{ new_rows }} as dbt_new
            where {% for key in keys %}dbt_new.{{ key }} = dbt_target.{{ key }}{{ ' and ' if not loop.last }}{% endfor %}
        );
        {%- endif %}
        insert into {{ target }} by name select * from {{ new_rows }};
        drop table {{ new_rows }}
    {%- endset -%}
    {{ return(materialize_in_one_statement(target, main_sql)) }}
{% endmaterialization %}
