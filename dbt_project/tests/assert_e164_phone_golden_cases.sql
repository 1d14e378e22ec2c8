-- Golden cases for macro e164_phone (default country code 1): a row here is a case the macro gets wrong.
with

cases as (

    select
        '(415) 555-0123' as raw_phone,
        '+14155550123' as expected
    union all
    select '415-555-0123', '+14155550123'
    union all
    select '+1 (415) 555-0123', '+14155550123'
    union all
    select '14155550123', '+14155550123'
    union all
    select ' +44 20 7946 0958 ', '+442079460958'
    union all
    select '555-0123', null
    union all
    select 'call me', null
    union all
    select '', null

)

select *
from cases
where {{ e164_phone('raw_phone') }} is distinct from expected
