{#- Devices whose identity history changed since an incremental model's watermark (a CTE named
    `watermark`, see incremental_watermark): a login or profile push carrying an identity that was
    loaded after loaded_since or happened after record_since, up to the as-of instant. Every record
    on such a device may now belong to someone else (a first login adopts the device's anonymous
    history retroactively; a new login takes over what follows it), so incremental models re-resolve
    all of them, and re-read the full history of their users. -#}
{% macro incremental_changed_devices() %}
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
        and (logins.loaded_at > watermark.loaded_since or logins.{{ record_at }} > watermark.record_since)
    {% if not loop.last %}union{% endif %}
    {%- endfor %}
{% endmacro %}
