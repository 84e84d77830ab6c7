-- View -> cart -> purchase funnel by top-level category
--
-- Business question: for each top-level product category, how many shopping
-- sessions looked at its products, how many put one in the cart, and how many
-- bought one? Where do sessions drop out of the funnel?
--
-- A session counts once per stage and category, however many events it has:
-- the stages are counts of DISTINCT user_session. Stages are counted
-- independently (a session that carted without a recorded view still counts
-- as a cart session). Products without a category_code are grouped under
-- '(none)'.
--
-- Columns:
--   category           top level of category_code (split_part(category_code, '.', 1))
--   view_sessions      sessions with at least one view in the category
--   cart_sessions      sessions with at least one add-to-cart in the category
--   purchase_sessions  sessions with at least one purchase in the category
--   view_to_cart       cart_sessions / view_sessions, 4 decimals
--   cart_to_purchase   purchase_sessions / cart_sessions, 4 decimals
--   view_to_purchase   purchase_sessions / view_sessions (overall conversion), 4 decimals
--
-- Ratios are NULL when the denominator is 0. Counts are cast to DOUBLE before
-- dividing: DataFusion divides integers as integers (truncating to 0) while
-- DuckDB's `/` always returns DOUBLE.
WITH stages AS (
    SELECT
        COALESCE(split_part(category_code, '.', 1), '(none)')                  AS category,
        count(DISTINCT CASE WHEN event_type = 'view'     THEN user_session END) AS view_sessions,
        count(DISTINCT CASE WHEN event_type = 'cart'     THEN user_session END) AS cart_sessions,
        count(DISTINCT CASE WHEN event_type = 'purchase' THEN user_session END) AS purchase_sessions
    FROM events
    GROUP BY COALESCE(split_part(category_code, '.', 1), '(none)')
)
SELECT
    category,
    view_sessions,
    cart_sessions,
    purchase_sessions,
    round(CAST(cart_sessions AS DOUBLE)     / NULLIF(view_sessions, 0), 4) AS view_to_cart,
    round(CAST(purchase_sessions AS DOUBLE) / NULLIF(cart_sessions, 0), 4) AS cart_to_purchase,
    round(CAST(purchase_sessions AS DOUBLE) / NULLIF(view_sessions, 0), 4) AS view_to_purchase
FROM stages
ORDER BY view_sessions DESC, category;
