-- Activity by hour of day and by day of week
--
-- Business question (restaurant-app adoption study: "when do people use the
-- app?"): at which hours of the day and on which weekdays are shoppers active,
-- and when do they actually buy?
--
-- Two blocks of rows in one result: dimension = 'hour_of_day' (bucket 0..23,
-- UTC) and dimension = 'weekday' (bucket 0..6, 0 = Sunday ... 6 = Saturday, as
-- extract(dow ...) numbers days in both DataFusion and DuckDB).
--
-- Columns:
--   dimension      'hour_of_day' or 'weekday'
--   bucket         the hour (0-23) or day of week (0 = Sunday)
--   label          readable bucket name ('07:00', 'Mon', ...)
--   events         all events in the bucket
--   views, carts, purchases   events of that type
--   sessions       distinct sessions active in the bucket
--   revenue        sum of purchase prices, rounded to cents
--   purchase_share this bucket's share of all purchases, 4 decimals
--
-- extract() returns different integer types in the two engines (Int32 in
-- DataFusion, BIGINT in DuckDB), so it is cast to BIGINT.
WITH timed AS (
    SELECT
        CAST(extract(hour FROM event_time) AS BIGINT) AS hour_of_day,
        CAST(extract(dow  FROM event_time) AS BIGINT) AS weekday,
        event_type,
        user_session,
        price
    FROM events
),
by_hour AS (
    SELECT
        'hour_of_day' AS dimension,
        hour_of_day   AS bucket,
        CASE WHEN hour_of_day < 10 THEN '0' ELSE '' END || CAST(hour_of_day AS VARCHAR) || ':00' AS label,
        count(*)                                                   AS events,
        sum(CASE WHEN event_type = 'view'     THEN 1 ELSE 0 END)   AS views,
        sum(CASE WHEN event_type = 'cart'     THEN 1 ELSE 0 END)   AS carts,
        sum(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END)   AS purchases,
        count(DISTINCT user_session)                               AS sessions,
        sum(CASE WHEN event_type = 'purchase' THEN price ELSE 0 END) AS revenue
    FROM timed
    GROUP BY hour_of_day
),
by_weekday AS (
    SELECT
        'weekday' AS dimension,
        weekday   AS bucket,
        CASE weekday
            WHEN 0 THEN 'Sun' WHEN 1 THEN 'Mon' WHEN 2 THEN 'Tue' WHEN 3 THEN 'Wed'
            WHEN 4 THEN 'Thu' WHEN 5 THEN 'Fri' ELSE 'Sat'
        END AS label,
        count(*)                                                   AS events,
        sum(CASE WHEN event_type = 'view'     THEN 1 ELSE 0 END)   AS views,
        sum(CASE WHEN event_type = 'cart'     THEN 1 ELSE 0 END)   AS carts,
        sum(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END)   AS purchases,
        count(DISTINCT user_session)                               AS sessions,
        sum(CASE WHEN event_type = 'purchase' THEN price ELSE 0 END) AS revenue
    FROM timed
    GROUP BY weekday
),
buckets AS (
    SELECT dimension, bucket, label, events, views, carts, purchases, sessions, revenue FROM by_hour
    UNION ALL
    SELECT dimension, bucket, label, events, views, carts, purchases, sessions, revenue FROM by_weekday
)
SELECT
    dimension,
    bucket,
    label,
    events,
    CAST(views AS BIGINT)     AS views,
    CAST(carts AS BIGINT)     AS carts,
    CAST(purchases AS BIGINT) AS purchases,
    sessions,
    round(revenue, 2)         AS revenue,
    round(CAST(purchases AS DOUBLE) / NULLIF(sum(purchases) OVER (PARTITION BY dimension), 0), 4) AS purchase_share
FROM buckets
ORDER BY dimension, bucket;
