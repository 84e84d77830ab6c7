-- Product views deduplicated per session
--
-- Business question (SalesInsights cleaning rule: "viewing of the same product
-- with the same user_session is only counted as one viewing event"): which
-- products are viewed most once page reloads and repeated views within a
-- session are removed, and how much do raw view counts overstate interest?
--
-- Columns:
--   product_id         the product
--   raw_views          all 'view' events of the product
--   session_views      distinct (user_session, product_id) pairs with a view,
--                      i.e. views counted once per session
--   duplicate_views    raw_views - session_views
--   views_per_session  raw_views / session_views, 4 decimals
--
-- Top 100 products by deduplicated views; ties broken by raw views, then
-- product_id. Views without a user_session cannot be deduplicated and only
-- count in raw_views.
WITH views AS (
    SELECT product_id, user_session
    FROM events
    WHERE event_type = 'view'
),
dedup AS (
    SELECT product_id, count(*) AS session_views
    FROM (SELECT DISTINCT product_id, user_session FROM views WHERE user_session IS NOT NULL) AS pairs
    GROUP BY product_id
),
raw AS (
    SELECT product_id, count(*) AS raw_views
    FROM views
    GROUP BY product_id
)
SELECT
    r.product_id,
    r.raw_views,
    COALESCE(d.session_views, 0)                                          AS session_views,
    r.raw_views - COALESCE(d.session_views, 0)                            AS duplicate_views,
    round(CAST(r.raw_views AS DOUBLE) / NULLIF(d.session_views, 0), 4)    AS views_per_session
FROM raw r
LEFT JOIN dedup d ON d.product_id = r.product_id
ORDER BY session_views DESC, r.raw_views DESC, r.product_id
LIMIT 100;
