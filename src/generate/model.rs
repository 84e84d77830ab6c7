//! The shop the generator simulates: categories, products with stable prices and Zipf-like
//! popularity, users with uneven activity, the planted co-purchase groups, and the daily and
//! weekly rhythm of traffic. Built once from the seed; every day's events are drawn from it.

use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Serialize;

/// A category: its dotted code, median price, and the brands sold in it.
struct CategorySpec {
    code: &'static str,
    median_price: f64,
    /// Relative share of products.
    weight: f64,
    brands: &'static [&'static str],
}

const CATEGORIES: &[CategorySpec] = &[
    CategorySpec {
        code: "electronics.smartphone",
        median_price: 280.0,
        weight: 9.0,
        brands: &[
            "samsung", "apple", "xiaomi", "huawei", "oppo", "vivo", "realme",
        ],
    },
    CategorySpec {
        code: "electronics.audio.headphone",
        median_price: 45.0,
        weight: 5.0,
        brands: &["samsung", "apple", "sony", "jbl", "xiaomi", "sennheiser"],
    },
    CategorySpec {
        code: "electronics.audio.acoustic",
        median_price: 70.0,
        weight: 2.0,
        brands: &["jbl", "sony", "yamaha", "bose"],
    },
    CategorySpec {
        code: "electronics.video.tv",
        median_price: 390.0,
        weight: 4.0,
        brands: &["samsung", "lg", "sony", "philips", "xiaomi"],
    },
    CategorySpec {
        code: "electronics.clocks",
        median_price: 160.0,
        weight: 3.0,
        brands: &["apple", "samsung", "garmin", "casio", "xiaomi"],
    },
    CategorySpec {
        code: "electronics.tablet",
        median_price: 250.0,
        weight: 2.0,
        brands: &["apple", "samsung", "lenovo", "huawei"],
    },
    CategorySpec {
        code: "electronics.camera.photo",
        median_price: 450.0,
        weight: 1.0,
        brands: &["canon", "nikon", "sony", "fujifilm"],
    },
    CategorySpec {
        code: "computers.notebook",
        median_price: 620.0,
        weight: 4.0,
        brands: &["lenovo", "hp", "asus", "acer", "apple", "dell"],
    },
    CategorySpec {
        code: "computers.desktop",
        median_price: 540.0,
        weight: 1.5,
        brands: &["hp", "lenovo", "dell", "asus"],
    },
    CategorySpec {
        code: "computers.peripherals.mouse",
        median_price: 18.0,
        weight: 2.0,
        brands: &["logitech", "a4tech", "razer", "defender"],
    },
    CategorySpec {
        code: "computers.peripherals.printer",
        median_price: 150.0,
        weight: 1.0,
        brands: &["hp", "canon", "epson", "brother"],
    },
    CategorySpec {
        code: "computers.components.videocards",
        median_price: 330.0,
        weight: 1.5,
        brands: &["msi", "gigabyte", "asus", "palit"],
    },
    CategorySpec {
        code: "appliances.kitchen.refrigerators",
        median_price: 480.0,
        weight: 3.0,
        brands: &["lg", "samsung", "bosch", "beko", "indesit"],
    },
    CategorySpec {
        code: "appliances.kitchen.washer",
        median_price: 330.0,
        weight: 3.0,
        brands: &["lg", "samsung", "bosch", "beko", "indesit"],
    },
    CategorySpec {
        code: "appliances.kitchen.kettle",
        median_price: 25.0,
        weight: 2.0,
        brands: &["tefal", "philips", "bosch", "redmond"],
    },
    CategorySpec {
        code: "appliances.kitchen.microwave",
        median_price: 90.0,
        weight: 1.5,
        brands: &["samsung", "lg", "midea", "gorenje"],
    },
    CategorySpec {
        code: "appliances.environment.vacuum",
        median_price: 130.0,
        weight: 2.5,
        brands: &["samsung", "philips", "dyson", "xiaomi", "karcher"],
    },
    CategorySpec {
        code: "appliances.environment.air_conditioner",
        median_price: 350.0,
        weight: 1.0,
        brands: &["lg", "samsung", "midea", "ballu"],
    },
    CategorySpec {
        code: "appliances.personal.hair_cutter",
        median_price: 35.0,
        weight: 1.0,
        brands: &["philips", "braun", "remington"],
    },
    CategorySpec {
        code: "apparel.shoes",
        median_price: 70.0,
        weight: 3.0,
        brands: &["nike", "adidas", "puma", "reebok", "asics"],
    },
    CategorySpec {
        code: "apparel.shoes.sneakers",
        median_price: 85.0,
        weight: 1.5,
        brands: &["nike", "adidas", "newbalance", "vans"],
    },
    CategorySpec {
        code: "apparel.costume",
        median_price: 45.0,
        weight: 1.5,
        brands: &["nike", "adidas", "puma"],
    },
    CategorySpec {
        code: "furniture.living_room.sofa",
        median_price: 410.0,
        weight: 1.5,
        brands: &["ikea", "askona", "hoff"],
    },
    CategorySpec {
        code: "furniture.bedroom.bed",
        median_price: 300.0,
        weight: 1.0,
        brands: &["ikea", "askona", "ormatek"],
    },
    CategorySpec {
        code: "kids.toys",
        median_price: 28.0,
        weight: 2.0,
        brands: &["lego", "hasbro", "mattel", "playmobil"],
    },
    CategorySpec {
        code: "kids.carriage",
        median_price: 210.0,
        weight: 1.0,
        brands: &["chicco", "cybex", "peg-perego"],
    },
    CategorySpec {
        code: "sport.bicycle",
        median_price: 290.0,
        weight: 1.0,
        brands: &["stels", "forward", "merida", "trek"],
    },
    CategorySpec {
        code: "sport.trainer",
        median_price: 240.0,
        weight: 0.5,
        brands: &["torneo", "kettler", "proxima"],
    },
    CategorySpec {
        code: "auto.accessories.player",
        median_price: 55.0,
        weight: 1.0,
        brands: &["pioneer", "kenwood", "sony", "alpine"],
    },
    CategorySpec {
        code: "auto.accessories.videoregister",
        median_price: 60.0,
        weight: 1.0,
        brands: &["xiaomi", "neoline", "playme"],
    },
    CategorySpec {
        code: "construction.tools.drill",
        median_price: 75.0,
        weight: 1.5,
        brands: &["bosch", "makita", "dewalt", "metabo"],
    },
    CategorySpec {
        code: "construction.tools.saw",
        median_price: 95.0,
        weight: 0.5,
        brands: &["bosch", "makita", "dewalt"],
    },
    CategorySpec {
        code: "accessories.bag",
        median_price: 30.0,
        weight: 1.5,
        brands: &["samsonite", "xiaomi", "tigernu"],
    },
    CategorySpec {
        code: "country_yard.lawn_mower",
        median_price: 180.0,
        weight: 0.5,
        brands: &["bosch", "makita", "huter"],
    },
    CategorySpec {
        code: "medicine.tools.tonometer",
        median_price: 40.0,
        weight: 0.5,
        brands: &["omron", "and", "microlife"],
    },
    CategorySpec {
        code: "stationery.cartrige",
        median_price: 22.0,
        weight: 0.5,
        brands: &["hp", "canon", "epson"],
    },
];

/// Share of products whose category has no code (as in the public dataset, where about a
/// third of rows lack `category_code`).
const NULL_CATEGORY_CODE_RATE: f64 = 0.28;
/// Share of products without a brand.
const NULL_BRAND_RATE: f64 = 0.13;
/// Zipf exponent of product popularity.
const PRODUCT_ZIPF_S: f64 = 1.05;
/// Zipf exponent of user activity.
const USER_ZIPF_S: f64 = 0.75;

/// One product, as it appears in every event about it.
#[derive(Debug, Clone)]
pub struct Product {
    pub product_id: i64,
    pub category_id: i64,
    /// Index into [`Shop::category_codes`]; `None` for a category without a code.
    pub category_code: Option<u16>,
    /// Index into [`Shop::brands`]; `None` for no brand.
    pub brand: Option<u16>,
    /// Index of the category spec (for browsing within a category).
    pub category: u16,
    pub price: f64,
}

/// A group of products planted to be bought together in the same session.
#[derive(Debug, Clone, Serialize)]
pub struct PlantedGroup {
    pub product_ids: Vec<i64>,
    /// Share of all sessions that buy the whole group.
    pub session_rate: f64,
}

/// A cumulative distribution over `0..n`, sampled by binary search.
#[derive(Debug, Clone)]
pub struct Cdf(Vec<f64>);

impl Cdf {
    pub fn from_weights(weights: impl IntoIterator<Item = f64>) -> Self {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = weights
            .into_iter()
            .map(|w| {
                acc += w;
                acc
            })
            .collect();
        let total = acc.max(f64::MIN_POSITIVE);
        for c in &mut cdf {
            *c /= total;
        }
        Self(cdf)
    }

    pub fn zipf(n: usize, s: f64) -> Self {
        Self::from_weights((1..=n).map(|k| (k as f64).powf(-s)))
    }

    pub fn sample(&self, rng: &mut impl Rng) -> usize {
        let u: f64 = rng.random();
        self.0.partition_point(|c| *c < u).min(self.0.len() - 1)
    }
}

/// Everything the generator needs to know about the simulated shop.
pub struct Shop {
    pub products: Vec<Product>,
    pub category_codes: Vec<&'static str>,
    pub brands: Vec<&'static str>,
    /// Global popularity: rank → product index.
    pub by_rank: Vec<u32>,
    pub product_popularity: Cdf,
    /// Per category spec: product indices by popularity, and their Zipf sampler.
    pub category_products: Vec<(Vec<u32>, Cdf)>,
    pub user_count: u32,
    pub user_activity: Cdf,
    /// Random user-id permutation offset so the most active user is not id 0.
    pub user_id_base: i64,
    pub planted: Vec<PlantedGroup>,
    /// Planted group members as product indices.
    pub planted_members: Vec<Vec<u32>>,
    pub hour_of_day: Cdf,
}

/// Relative traffic per weekday, Monday first: weekends are busier.
pub const WEEKDAY_WEIGHT: [f64; 7] = [0.93, 0.92, 0.94, 0.98, 1.04, 1.17, 1.22];

impl Shop {
    /// Builds the shop for a dataset of about `events` events.
    pub fn new(seed: u64, events: u64) -> Self {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x5EED_5A0B_0000_0001);
        let n_products = (events / 120).clamp(300, 250_000) as usize;
        let n_users = (events / 20).clamp(500, 3_000_000) as u32;

        let mut category_codes = Vec::new();
        let mut brands: Vec<&'static str> = Vec::new();
        for spec in CATEGORIES {
            category_codes.push(spec.code);
            for b in spec.brands {
                if !brands.contains(b) {
                    brands.push(b);
                }
            }
        }
        let category_cdf = Cdf::from_weights(CATEGORIES.iter().map(|c| c.weight));
        let price_noise = LogNormal::new(0.0, 0.45).expect("valid lognormal");
        let mut products = Vec::with_capacity(n_products);
        for i in 0..n_products {
            let cat = category_cdf.sample(&mut rng);
            let spec = &CATEGORIES[cat];
            let coded = rng.random::<f64>() >= NULL_CATEGORY_CODE_RATE;
            // A category without a code has its own id, like the public dataset's.
            let category_id = 2_053_013_552_226_107_603_i64
                + (cat as i64) * 17_592_186_044_417
                + if coded { 0 } else { 4_398_046_511_104 };
            let brand = if rng.random::<f64>() < NULL_BRAND_RATE {
                None
            } else {
                let b = spec.brands[Cdf::zipf(spec.brands.len(), 1.0).sample(&mut rng)];
                brands.iter().position(|x| *x == b).map(|p| p as u16)
            };
            let price = (spec.median_price * price_noise.sample(&mut rng)).max(0.99);
            products.push(Product {
                product_id: 1_000_000 + (i as i64) * 37 + rng.random_range(0..37),
                category_id,
                category_code: coded.then_some(cat as u16),
                brand,
                category: cat as u16,
                price: (price * 100.0).round() / 100.0,
            });
        }
        // Popularity order is a random permutation of products.
        let mut by_rank: Vec<u32> = (0..n_products as u32).collect();
        for i in (1..by_rank.len()).rev() {
            let j = rng.random_range(0..=i);
            by_rank.swap(i, j);
        }
        let product_popularity = Cdf::zipf(n_products, PRODUCT_ZIPF_S);
        let mut category_products: Vec<Vec<u32>> = vec![Vec::new(); CATEGORIES.len()];
        for &p in &by_rank {
            category_products[products[p as usize].category as usize].push(p);
        }
        let category_products = category_products
            .into_iter()
            .map(|list| {
                let cdf = Cdf::zipf(list.len().max(1), PRODUCT_ZIPF_S);
                (list, cdf)
            })
            .collect();

        // Planted co-purchase groups: mid-popularity products from related categories, so
        // their lift stands out from ordinary co-occurrence.
        let group_categories: [&[&str]; 3] = [
            &[
                "electronics.smartphone",
                "electronics.audio.headphone",
                "electronics.clocks",
            ],
            &[
                "appliances.kitchen.washer",
                "appliances.kitchen.refrigerators",
            ],
            &[
                "computers.notebook",
                "computers.peripherals.mouse",
                "accessories.bag",
            ],
        ];
        let rates = [0.0025, 0.002, 0.0015];
        let mut planted = Vec::new();
        let mut planted_members = Vec::new();
        let mut used = std::collections::HashSet::new();
        for (g, cats) in group_categories.iter().enumerate() {
            let mut members = Vec::new();
            for code in cats.iter() {
                let cat = CATEGORIES
                    .iter()
                    .position(|c| c.code == *code)
                    .expect("known");
                let list = &by_rank;
                // The first product of this category ranked past the head of the popularity curve.
                let start = (n_products / 20).max(1);
                let pick = list[start..]
                    .iter()
                    .chain(list[..start].iter())
                    .copied()
                    .find(|&p| {
                        let pr = &products[p as usize];
                        pr.category as usize == cat
                            && pr.category_code.is_some()
                            && !used.contains(&p)
                    });
                if let Some(p) = pick {
                    used.insert(p);
                    members.push(p);
                }
            }
            if members.len() >= 2 {
                planted.push(PlantedGroup {
                    product_ids: members
                        .iter()
                        .map(|&p| products[p as usize].product_id)
                        .collect(),
                    session_rate: rates[g],
                });
                planted_members.push(members);
            }
        }

        // Diurnal curve (UTC): quiet at night, a lunch bump, an evening peak.
        let hour_of_day = Cdf::from_weights((0..24).map(|h| {
            let h = h as f64 + 0.5;
            0.12 + 0.55 * (-((h - 12.5) / 3.0).powi(2)).exp() + (-((h - 19.5) / 2.8).powi(2)).exp()
        }));

        Self {
            products,
            category_codes,
            brands,
            by_rank,
            product_popularity,
            category_products,
            user_count: n_users,
            user_activity: Cdf::zipf(n_users as usize, USER_ZIPF_S),
            user_id_base: 512_000_000 + rng.random_range(0..1_000_000),
            planted,
            planted_members,
            hour_of_day,
        }
    }

    /// A product drawn by global popularity.
    pub fn popular_product(&self, rng: &mut impl Rng) -> u32 {
        self.by_rank[self.product_popularity.sample(rng)]
    }

    /// A product from the same category as `product`, drawn by popularity within it.
    pub fn related_product(&self, product: u32, rng: &mut impl Rng) -> u32 {
        let cat = self.products[product as usize].category as usize;
        let (list, cdf) = &self.category_products[cat];
        list[cdf.sample(rng).min(list.len() - 1)]
    }

    pub fn user_id(&self, rng: &mut impl Rng) -> i64 {
        self.user_id_base + self.user_activity.sample(rng) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shop_is_deterministic_and_sane() {
        let a = Shop::new(7, 1_000_000);
        let b = Shop::new(7, 1_000_000);
        assert_eq!(a.products.len(), b.products.len());
        assert_eq!(a.products[10].product_id, b.products[10].product_id);
        assert_eq!(a.planted.len(), 3);
        let ids: std::collections::HashSet<i64> = a.products.iter().map(|p| p.product_id).collect();
        assert_eq!(ids.len(), a.products.len(), "product ids are unique");
        let nulls = a
            .products
            .iter()
            .filter(|p| p.category_code.is_none())
            .count() as f64;
        let rate = nulls / a.products.len() as f64;
        assert!(
            (0.2..0.36).contains(&rate),
            "null category_code rate {rate}"
        );
    }

    #[test]
    fn zipf_cdf_favours_head() {
        let cdf = Cdf::zipf(1000, 1.05);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        let head = (0..10_000).filter(|_| cdf.sample(&mut rng) < 10).count();
        assert!(head > 3000, "top 10 of 1000 got {head} of 10000 draws");
    }
}
