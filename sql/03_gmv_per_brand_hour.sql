-- GMV, purchase count and average price per brand per hour
--
-- Business question (SalesInsights, second storage tier): hour by hour, which
-- brands sell the most, in money and in units, and at what average price?
--
-- Columns:
--   hour        start of the one-hour bucket (date_trunc('hour', event_time), UTC)
--   brand       the product's brand; purchases of products without a brand are
--               grouped under '(no brand)'
--   gmv         Gross Merchandise Value: sum of purchase prices, rounded to cents
--   purchases   number of purchase events
--   products    distinct products of the brand sold in that hour
--   avg_price   average price paid = gmv / purchases, rounded to 4 decimals
--
-- Newest hours first; within an hour, the highest GMV first.
-- avg_price is derived from the rounded GMV so it is bit-identical across
-- engines (see 02_gmv_per_product_minute.sql).
SELECT
    date_trunc('hour', event_time)                AS hour,
    COALESCE(brand, '(no brand)')                 AS brand,
    round(sum(price), 2)                          AS gmv,
    count(*)                                      AS purchases,
    count(DISTINCT product_id)                    AS products,
    round(round(sum(price), 2) / count(*), 4)     AS avg_price
FROM events
WHERE event_type = 'purchase'
GROUP BY date_trunc('hour', event_time), COALESCE(brand, '(no brand)')
ORDER BY hour DESC, gmv DESC, brand
LIMIT 1000;
