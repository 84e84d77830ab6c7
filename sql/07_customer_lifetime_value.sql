-- Customer lifetime value: top customers by purchase revenue
--
-- Business question: who are the most valuable customers over the whole data
-- set, how often do they order, how much do they spend per order, and when did
-- they first and last buy?
--
-- An "order" is a session with at least one purchase (all items bought in one
-- user_session form one order); purchases without a user_session count as
-- items and revenue but not as orders.
--
-- Columns:
--   user_id          the customer
--   revenue          total of all purchase prices, rounded to cents (the CLV)
--   orders           distinct sessions with a purchase
--   items            purchase events (units bought)
--   avg_order_value  revenue / orders, rounded to 4 decimals (NULL when the
--                    purchases carry no user_session, i.e. orders = 0)
--   first_purchase   time of the first purchase (UTC)
--   last_purchase    time of the last purchase (UTC)
--
-- Top 100 customers by revenue; ties broken by user_id. avg_order_value is
-- derived from the cent-rounded revenue so it is bit-identical across engines.
SELECT
    user_id,
    round(sum(price), 2)                                                    AS revenue,
    count(DISTINCT user_session)                                            AS orders,
    count(*)                                                                AS items,
    round(round(sum(price), 2) / CAST(NULLIF(count(DISTINCT user_session), 0) AS DOUBLE), 4) AS avg_order_value,
    min(event_time)                                                         AS first_purchase,
    max(event_time)                                                         AS last_purchase
FROM events
WHERE event_type = 'purchase'
GROUP BY user_id
ORDER BY revenue DESC, user_id
LIMIT 100;
