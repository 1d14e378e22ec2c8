{#- The CTE `touched_users` of the per-user profile models (int_users__*), inside `{% if is_incremental() %}`
    after incremental_scope, followed by a comma: the users whose profile rows may differ. They are the
    owners of profile records that are new or newly visible, and the users whose records may have moved
    (incremental_reresolved_users). A user with new events only is not touched: events change no profile
    field. The model recomputes these users from all their profile records and sends a tombstone for those
    left with none, so that delete+insert on user_id removes their row (a post-hook deletes the tombstones).
    record_at_column is the model's record-time column, as given to incremental_scope. -#}
{% macro incremental_profile_users(record_at_column) %}
    touched_users as (

        select record_users.user_id
        from {{ ref('int_identity__record_users') }} as record_users
        where
            record_users.record_kind = 'profile'
            -- the profile records of re-resolved devices belong to their owners, all in the union below
            and {{ incremental_in_scope('record_users.loaded_at', 'record_users.record_at', watermark_of=record_at_column) }}
        union
        {{ incremental_reresolved_users() }}

    ),
{% endmacro %}
