-- Top 10% most purchased products
--
-- Business question (PetGo, "frequently bought items"): which products make up
-- the top 10% of all purchased products, ranked by how many times they were
-- bought? These are the items to feature as "popular right now" and to stock.
--
-- How the cut-off is computed: every product with at least one purchase is
-- ranked by purchase count (rank(): tied products share a rank). A product is
-- in the top 10% when its rank <= ceil(number of purchased products / 10).
-- The rule is deterministic (no percentile approximation, no ntile bucketing);
-- products tied at the cut-off rank are all kept.
--
-- Columns:
--   purchase_rank       1 = most purchased; tied products share a rank
--   product_id          the product
--   purchases           number of purchase events for the product
--   buyers              distinct users who bought it
--   revenue             sum of purchase prices (GMV), rounded to cents
--   purchased_products  how many distinct products were purchased at all
--   cutoff_rank         ceil(purchased_products / 10): the last rank kept
--
-- Portability (DataFusion and DuckDB): the division is done in DOUBLE on
-- purpose. `0.1 * n` would be a DOUBLE in DataFusion but a DECIMAL in DuckDB,
-- and 0.1 * n in floating point can land just above an integer (0.1 * 30 =
-- 3.0000000000000004), which would move the cut-off by one. n / 10.0 computed
-- as a correctly rounded division is exact whenever n is a multiple of 10.
--
-- The result is ordered by `purchases DESC, product_id`, which is the same
-- order as `purchase_rank, product_id` (rank is derived from purchases).
-- Ordering by the rank column itself is avoided on purpose: DataFusion 55
-- wrongly treats the output of rank() over an aggregate as already ordered on
-- the tie-breaker column and drops the final sort, so ties came back in
-- arbitrary order.
WITH purchases AS (
    SELECT
        product_id,
        count(*)                AS purchases,
        count(DISTINCT user_id) AS buyers,
        round(sum(price), 2)    AS revenue
    FROM events
    WHERE event_type = 'purchase'
    GROUP BY product_id
),
ranked AS (
    SELECT
        product_id,
        purchases,
        buyers,
        revenue,
        CAST(rank() OVER (ORDER BY purchases DESC) AS BIGINT) AS purchase_rank,
        count(*) OVER ()                                      AS purchased_products
    FROM purchases
)
SELECT
    purchase_rank,
    product_id,
    purchases,
    buyers,
    revenue,
    purchased_products,
    CAST(ceil(CAST(purchased_products AS DOUBLE) / 10) AS BIGINT) AS cutoff_rank
FROM ranked
WHERE purchase_rank <= ceil(CAST(purchased_products AS DOUBLE) / 10)
ORDER BY purchases DESC, product_id
LIMIT 1000;
