{#- Devices whose identity history changed since an incremental model's watermark (a CTE named
    `watermark`, see incremental_watermark): a login (an event or profile update carrying identity and
    objectId) loaded after loaded_since or made visible after record_since, up to the as-of instant,
    that is a switch in int_identity__device_switches. Every record on such a device may now belong to
    someone else (a first login adopts the device's anonymous history retroactively; a new login takes
    over what follows it), so the incremental models re-resolve all of them and re-read the full
    history of their users.

    A login that is not a switch changes nothing: the identity logged in just before it was the same,
    so the device's sequence of identity changes, which alone decides every record's user, is the same
    with or without it. That is the common case (a user keeps using their own phone), and skipping it
    keeps an incremental run proportional to what changed rather than to who was active.

    switches_only=false gives every device with a new login: what int_identity__device_switches itself
    needs, since it is the table that says which logins are switches. -#}
{% macro incremental_changed_devices(switches_only=true) %}
    {%- for relation, record_at in [
        (ref('stg_clevertap__events'), 'event_at'),
        (ref('stg_clevertap__profiles'), 'updated_at'),
    ] %}
    select logins.device_id
    from {{ relation }} as logins
    cross join watermark
    {%- if switches_only %}
    inner join {{ ref('int_identity__device_switches') }} as switches
        on
            logins.device_id = switches.device_id
            and logins.identity = switches.identity
            and logins.{{ record_at }} = switches.switched_at
    {%- endif %}
    where
        logins.identity is not null
        and logins.device_id is not null
        and logins.{{ record_at }} <= {{ rekindle_as_of() }}
        and (logins.loaded_at > watermark.loaded_since or logins.{{ record_at }} > watermark.record_since)
    {% if not loop.last %}union{% endif %}
    {%- endfor %}
{% endmacro %}
