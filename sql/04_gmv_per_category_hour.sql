-- GMV, purchase count and average price per category level per hour
--
-- Business question (SalesInsights): hour by hour, how much does each product
-- category sell, both at the top level (e.g. 'electronics') and at the second
-- level (e.g. 'electronics.smartphone')?
--
-- category_code holds 1 to 3 dot-separated levels. Following the SalesInsights
-- cleaning rules, a category without a second level is filled with the level
-- above ('furniture' -> 'furniture.furniture'), and purchases of products
-- without any category_code are reported under '(none)'.
--
-- Columns:
--   hour            start of the one-hour bucket (UTC)
--   category_level  1 = top level, 2 = second level
--   category        the category: 'electronics' (level 1) or
--                   'electronics.smartphone' (level 2)
--   gmv             sum of purchase prices, rounded to cents
--   purchases       number of purchase events
--   avg_price       gmv / purchases, rounded to 4 decimals
--
-- Newest hours first; then level 1 before level 2, highest GMV first.
-- split_part returns '' for a missing level (Postgres behaviour, shared by
-- DataFusion and DuckDB) and NULL for a NULL category_code.
WITH purchases AS (
    SELECT
        date_trunc('hour', event_time) AS hour,
        COALESCE(split_part(category_code, '.', 1), '(none)') AS level1,
        CASE
            WHEN category_code IS NULL THEN '(none)'
            WHEN split_part(category_code, '.', 2) = ''
                THEN split_part(category_code, '.', 1) || '.' || split_part(category_code, '.', 1)
            ELSE split_part(category_code, '.', 1) || '.' || split_part(category_code, '.', 2)
        END AS level2,
        price
    FROM events
    WHERE event_type = 'purchase'
),
by_level AS (
    SELECT
        hour,
        CAST(1 AS BIGINT)                          AS category_level,
        level1                                     AS category,
        round(sum(price), 2)                       AS gmv,
        count(*)                                   AS purchases,
        round(round(sum(price), 2) / count(*), 4)  AS avg_price
    FROM purchases
    GROUP BY hour, level1
    UNION ALL
    SELECT
        hour,
        CAST(2 AS BIGINT)                          AS category_level,
        level2                                     AS category,
        round(sum(price), 2)                       AS gmv,
        count(*)                                   AS purchases,
        round(round(sum(price), 2) / count(*), 4)  AS avg_price
    FROM purchases
    GROUP BY hour, level2
)
SELECT hour, category_level, category, gmv, purchases, avg_price
FROM by_level
ORDER BY hour DESC, category_level, gmv DESC, category
LIMIT 1000;
