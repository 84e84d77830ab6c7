-- Price anomalies: purchases far from the product's usual price
--
-- Business question: which purchases were made at a price far away from what
-- the product normally costs? Such purchases point at pricing errors, broken
-- promotions or fraud (ExStreamly Cheap: "what makes a deal a deal?").
--
-- A product's usual price is the exact median of its price over ALL its events
-- (views, carts and purchases). A purchase is an anomaly when its price is more
-- than 3x that median ('over') or less than 1/3 of it ('under').
--
-- Columns:
--   event_time    when the purchase happened (UTC)
--   user_session  the session that bought
--   user_id       the buyer
--   product_id    the product
--   brand         its brand (NULL if unknown)
--   price         the price paid
--   median_price  the product's median price over all its events, 4 decimals
--   price_ratio   price / median_price, 4 decimals
--   direction     'over' (price > 3 x median) or 'under' (price < median / 3)
--
-- Most extreme (largest price_ratio) first, then by time. median() is exact in
-- both DataFusion and DuckDB (approx_median / approx_percentile would not be).
WITH product_price AS (
    SELECT product_id, median(price) AS median_price
    FROM events
    GROUP BY product_id
)
SELECT
    e.event_time,
    e.user_session,
    e.user_id,
    e.product_id,
    e.brand,
    e.price,
    round(p.median_price, 4)           AS median_price,
    round(e.price / p.median_price, 4) AS price_ratio,
    CASE WHEN e.price > 3 * p.median_price THEN 'over' ELSE 'under' END AS direction
FROM events e
JOIN product_price p ON p.product_id = e.product_id
WHERE e.event_type = 'purchase'
  AND (e.price > 3 * p.median_price OR e.price < p.median_price / 3)
ORDER BY price_ratio DESC, e.event_time, e.user_session, e.product_id, e.price
LIMIT 1000;
