use super::*;

#[test]
fn white_noise_around_a_mean_forecasts_the_mean() {
    // A fixed, irregular sequence around 10.
    let series: Vec<f64> = (0..200)
        .map(|i| 10.0 + ((i * 37 % 17) as f64 - 8.0) / 8.0)
        .collect();
    let f = fit(&series, Order::new(0, 0, 0)).expect("fits");
    let mean = series.iter().sum::<f64>() / series.len() as f64;
    assert!((f.mean.expect("d = 0 has a mean") - mean).abs() < 1e-6);
    let fc = f.forecast(3);
    for (m, v) in fc.mean.iter().zip(&fc.variance) {
        assert!((m - mean).abs() < 1e-6);
        assert!((v - f.sigma2).abs() < 1e-9);
    }
}

#[test]
fn a_straight_line_is_continued_exactly() {
    let series: Vec<f64> = (0..50).map(|i| 3.0 + 2.0 * i as f64).collect();
    for order in [
        Order::new(0, 1, 0),
        Order::new(1, 1, 1),
        Order::new(0, 2, 0),
    ] {
        let fc = fit(&series, order).expect("fits").forecast(4);
        for (k, m) in fc.mean.iter().enumerate() {
            assert!(
                (m - (3.0 + 2.0 * (50 + k) as f64)).abs() < 1e-9,
                "{order}: {fc:?}"
            );
        }
        assert!(fc.variance.iter().all(|&v| v == 0.0));
    }
    // A constant series forecasts itself under any d.
    let flat = vec![7.0; 30];
    for d in 0..=2 {
        let fc = fit(&flat, Order::new(1, d, 0)).expect("fits").forecast(2);
        assert!(
            fc.mean.iter().all(|m| (m - 7.0).abs() < 1e-9),
            "d = {d}: {fc:?}"
        );
    }
}

#[test]
fn refuses_bad_input() {
    assert!(fit(&[1.0, 2.0, 3.0], Order::new(2, 0, 2)).is_err());
    assert!(fit(&[1.0; 100], Order::new(6, 0, 0)).is_err());
    assert!(fit(&[1.0; 100], Order::new(0, 3, 0)).is_err());
    let mut nan = vec![1.0; 100];
    nan[3] = f64::NAN;
    assert!(fit(&nan, Order::new(1, 0, 0)).is_err());
}

#[test]
fn forecast_variance_grows_for_integrated_models() {
    let series: Vec<f64> = (0..120)
        .map(|i| (i as f64 * 0.3).sin() * 5.0 + i as f64 * 0.1 + ((i * 7919) % 13) as f64 * 0.2)
        .collect();
    let fc = fit(&series, Order::new(1, 1, 0))
        .expect("fits")
        .forecast(10);
    assert!(fc.variance.windows(2).all(|w| w[1] >= w[0]));
}
