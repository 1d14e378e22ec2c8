{#- The CTEs (each followed by a comma) of a per-user report intermediate that rebuilds users from their rows
    in a report table upstream, `upstream` (int_reports__user_event_days or int_reports__user_report_days),
    inside `{% if is_incremental() %}`: incremental_scope's, then touched_users, every user whose rows in
    `upstream` may have been replaced in this run. That is the user-days' scope (by user and day), widened to
    whole users: a user with a row loaded or become visible since the model's watermark (a rewritten row
    holds the latest event and load of its user-day, or of its user, and rewritten rows are appended at the
    end of the table, so the filter on constants reads its last row groups only), the owners of re-resolved
    devices (whose user-days may have lost events, or vanished), and everyone when the as-of instant moved
    back or the model's rows carry another definitions_digest than the given one. The model needs
    last_event_at and loaded_at columns holding each user's latest event and load on a row for every user
    (so the watermarks are exact) and a definitions_digest column. -#}
{% macro report_touched_users(definitions_digest, upstream) %}
    {{ incremental_scope('last_event_at') }}

    {#- a constant (incremental_constant), so that the filters below can skip row groups -#}
    {%- set everyone = incremental_constant(
        '(select ' ~ incremental_watermark('last_event_at').as_of_moved_back
        ~ ' or exists (select 1 from ' ~ this ~ ' as held where held.definitions_digest <> '
        ~ segment_literal(definitions_digest) ~ '))',
        'boolean',
    ) %}
    touched_users as (

        select user_days.user_id
        from {{ upstream }} as user_days
        where {{ incremental_in_scope('user_days.loaded_at', 'user_days.last_event_at', watermark_of='last_event_at') }}
        union
        {#- a branch of its own, not an `or` in the filter above, which would then read every row group #}
        select user_days.user_id
        from {{ upstream }} as user_days
        where {{ everyone }}
        union
        {#- the owners of re-resolved devices and, on a rerun of an earlier day, everyone held #}
        select reresolved.user_id
        from ({{ incremental_reresolved_users() }}) as reresolved
        union
        select held.user_id
        from {{ this }} as held
        where {{ everyone }}

    ),
{% endmacro %}
