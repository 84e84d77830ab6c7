-- GMV, purchase count and average price per product per minute
--
-- Business question (SalesInsights / live sales monitoring): minute by minute,
-- how much Gross Merchandise Value (GMV) does each product bring in, how many
-- units are sold and at what average price? This is the finest grain of the
-- live dashboard; hourly brand and category roll-ups are in 03 and 04.
--
-- Columns:
--   minute      start of the one-minute bucket (date_trunc('minute', event_time), UTC)
--   product_id  the product
--   gmv         Gross Merchandise Value: sum of purchase prices, rounded to cents
--   purchases   number of purchase events
--   avg_price   average price paid = gmv / purchases, rounded to 4 decimals
--
-- Newest minutes first; within a minute, the highest GMV first. LIMIT keeps the
-- result to the most recent slice; add a WHERE on event_time for another window.
--
-- Portability: avg_price is computed from the cent-rounded GMV rather than
-- avg(price). Summing floating-point prices in a different order (parallel
-- engines do) can change the last bit of the sum, and an average of cent
-- prices can lie exactly on a rounding boundary (12.35 / 8 = 1.54375), where
-- that last bit decides the rounding. Dividing the already rounded GMV by the
-- integer count gives the same bits in every engine.
SELECT
    date_trunc('minute', event_time)              AS minute,
    product_id,
    round(sum(price), 2)                          AS gmv,
    count(*)                                      AS purchases,
    round(round(sum(price), 2) / count(*), 4)     AS avg_price
FROM events
WHERE event_type = 'purchase'
GROUP BY date_trunc('minute', event_time), product_id
ORDER BY minute DESC, gmv DESC, product_id
LIMIT 1000;
