-- Cart abandonment, overall and by top-level category
--
-- Business question: how many shopping sessions put something in the cart but
-- left without buying, how much merchandise value was left behind, and which
-- categories are abandoned most?
--
-- Definitions:
--   * overall row ('(all categories)'): a session is a cart session if it has at
--     least one 'cart' event; it is abandoned if it has no 'purchase' event at all.
--   * per category rows: a session is a cart session for a category if it carted
--     a product of that category; it is abandoned for that category if it bought
--     nothing from that category in the same session (it may have bought
--     something else). Products without category_code are under '(none)'.
--   'remove_from_cart' events are ignored: an item carted then removed still
--   counts as an abandoned cart.
--
-- Columns:
--   category            '(all categories)' or the top level of category_code
--   cart_sessions       sessions that carted something (in the category)
--   abandoned_sessions  of those, sessions with no purchase (in the category)
--   abandonment_rate    abandoned_sessions / cart_sessions, 4 decimals
--   abandoned_value     sum of the prices of all 'cart' events in abandoned
--                       sessions (in the category), rounded to cents
--
-- The overall row comes first, then categories by abandoned sessions.
WITH session_category AS (
    SELECT
        user_session,
        COALESCE(split_part(category_code, '.', 1), '(none)')         AS category,
        max(CASE WHEN event_type = 'cart'     THEN 1 ELSE 0 END)      AS carted,
        max(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END)      AS purchased,
        sum(CASE WHEN event_type = 'cart'     THEN price ELSE 0 END)  AS cart_value
    FROM events
    WHERE event_type IN ('cart', 'purchase')
      AND user_session IS NOT NULL
    GROUP BY user_session, COALESCE(split_part(category_code, '.', 1), '(none)')
),
session_overall AS (
    SELECT
        user_session,
        '(all categories)' AS category,
        max(carted)        AS carted,
        max(purchased)     AS purchased,
        sum(cart_value)    AS cart_value
    FROM session_category
    GROUP BY user_session
),
sessions AS (
    SELECT user_session, category, carted, purchased, cart_value FROM session_overall
    UNION ALL
    SELECT user_session, category, carted, purchased, cart_value FROM session_category
),
abandonment AS (
    SELECT
        category,
        CAST(sum(carted) AS BIGINT)                                                      AS cart_sessions,
        CAST(sum(CASE WHEN carted = 1 AND purchased = 0 THEN 1 ELSE 0 END) AS BIGINT)    AS abandoned_sessions,
        round(sum(CASE WHEN carted = 1 AND purchased = 0 THEN cart_value ELSE 0 END), 2) AS abandoned_value
    FROM sessions
    GROUP BY category
)
SELECT
    category,
    cart_sessions,
    abandoned_sessions,
    round(CAST(abandoned_sessions AS DOUBLE) / NULLIF(cart_sessions, 0), 4) AS abandonment_rate,
    abandoned_value
FROM abandonment
WHERE cart_sessions > 0
ORDER BY
    CASE WHEN category = '(all categories)' THEN 0 ELSE 1 END,
    abandoned_sessions DESC,
    category;
