{#- The two CTEs every identity-aware incremental model starts with (inside `{% if is_incremental() %}`),
    each followed by a comma, ready for the model's own CTEs:
    watermark        one row of constants (incremental_watermark, evaluated when the run starts):
                     loaded_since (incremental_loaded_since); record_since, the latest record
                     time held (records after it were beyond the previous run's as-of instant and become
                     visible now); as_of_moved_back, true when the model holds records after this run's
                     as-of instant (a rerun or backfill of an earlier day: everything is decided again,
                     since a login after the new as-of may have adopted older anonymous history).
    changed_devices  devices whose identity history changed since the watermark: a login (an event or
                     profile update with identity and objectId), loaded after loaded_since or made
                     visible after record_since, that is a switch in int_identity__device_switches.
                     Every record on such a device may now belong to someone else, so the models
                     re-resolve all of them and re-read their users' full history. A login that is not a
                     switch changes nobody's user (the identity logged in before it was the same), and
                     skipping those keeps a run proportional to what changed, not to who was active.
                     They are read from the switches table alone (its login_loaded_at is the latest load
                     of the login records behind each switch), not from a join of every login in staging
                     with it: that join cost seconds per model at 10 million events. A late login that
                     removes a switch (the same identity, earlier) is itself a switch, so its device is
                     found too. Beside it, revealed_devices: the changed devices whose switch was
                     loaded by the watermark and only became visible now (the as-of instant moved
                     past it), the ones incremental_resolved_records cannot find by load time; no
                     device in a run whose as-of instant only moves with the loads.
                     switches_only=false gives every device with a new login: what
                     int_identity__device_switches itself needs, being the table that says which logins
                     are switches. devices=false leaves this CTE out (int_identity__device_owners, which
                     finds its devices among the new records). -#}
{% macro incremental_scope(record_at_column, switches_only=true, devices=true) %}
    {%- set constants = incremental_watermark(record_at_column) %}
    watermark as (

        select
            {{ constants.loaded_since }} as loaded_since,
            {{ constants.record_since }} as record_since,
            {{ constants.as_of_moved_back }} as as_of_moved_back

    ),
    {%- if devices %}

    changed_devices as (

        {%- if switches_only %}
        select distinct switches.device_id
        from {{ ref('int_identity__device_switches') }} as switches
        cross join watermark
        where
            switches.login_loaded_at > watermark.loaded_since
            or switches.switched_at > watermark.record_since
        {%- else %}
        {%- for relation, record_at in [
            (ref('stg_clevertap__events'), 'event_at'),
            (ref('stg_clevertap__profiles'), 'updated_at'),
        ] %}
        select logins.device_id
        from {{ relation }} as logins
        cross join watermark
        where
            logins.identity is not null
            and logins.device_id is not null
            and logins.{{ record_at }} <= {{ rekindle_as_of() }}
            and (
                logins.loaded_at > {{ constants.loaded_since }}
                or logins.{{ record_at }} > {{ constants.record_since }}
            )
        {% if not loop.last %}union{% endif %}
        {%- endfor %}
        {%- endif %}

    ),
    {%- if switches_only %}

    revealed_devices as (

        select distinct switches.device_id
        from {{ ref('int_identity__device_switches') }} as switches
        cross join watermark
        where
            switches.switched_at > watermark.record_since
            and switches.login_loaded_at <= watermark.loaded_since

    ),
    {%- endif %}
    {%- endif %}
{% endmacro %}
