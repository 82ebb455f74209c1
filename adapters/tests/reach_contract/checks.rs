//! Checks before buying: coverage, device, catalog, quote (Scenario A, steps 1-4).

use super::support::*;

#[tokio::test]
async fn coverage_is_an_outcome_with_the_documented_wire_format() {
    let sim = sim().await;
    let client = client(&sim);
    let covered = client.coverage(&address("75001")).await.unwrap();
    assert_eq!(
        covered,
        CoverageOutcome::Covered {
            strength_5g: Some("GOOD".into()),
            strength_4g: Some("EXCELLENT".into())
        }
    );
    let seen = sim
        .requests()
        .last_to("/apisvc/v0/network/coverage")
        .unwrap();
    assert_eq!(seen.method, http::Method::POST);
    assert_eq!(
        seen.json().unwrap(),
        json!({"address1": "1 Main St", "city": "Dallas", "state": "TX", "zip": "75001", "country": "USA"})
    );

    sim.set_coverage("99501", false);
    assert!(matches!(
        client.coverage(&address("99501")).await.unwrap(),
        CoverageOutcome::NotCovered { .. }
    ));
    // A scripted business refusal gives the same normal answer.
    sim.faults().script_next(
        COVERAGE_ENDPOINT,
        Fault::refusal("NO_COVERAGE", "No coverage"),
    );
    assert!(matches!(
        client.coverage(&address("75001")).await.unwrap(),
        CoverageOutcome::NotCovered { .. }
    ));
}

#[tokio::test]
async fn imei_checks_give_validity_and_mode() {
    let sim = sim().await;
    let client = client(&sim);
    let ImeiOutcome::Valid(device) = client
        .check_imei(&Imei::parse(IMEI).unwrap())
        .await
        .unwrap()
    else {
        panic!("valid IMEI")
    };
    assert_eq!(device.mode, DeviceMode::Both);
    assert!(device.esim_available);
    assert_eq!(device.make.as_deref(), Some("Google"));
    let seen = sim.requests().all().pop().unwrap();
    assert_eq!(seen.method, http::Method::GET);
    assert_eq!(seen.path, format!("/apisvc/v0/device/imei/{IMEI}"));

    // A wrong check digit: isValid=false, a normal answer.
    assert_eq!(
        client
            .check_imei(&Imei::parse("356938035643808").unwrap())
            .await
            .unwrap(),
        ImeiOutcome::Invalid
    );
    sim.set_device("490154203237518", DeviceProfile::only(DeviceMode::Psim));
    let ImeiOutcome::Valid(psim_only) = client
        .check_imei(&Imei::parse("490154203237518").unwrap())
        .await
        .unwrap()
    else {
        panic!("valid IMEI")
    };
    assert_eq!(psim_only.mode, DeviceMode::Psim);
    assert!(!psim_only.esim_available);
}

#[tokio::test]
async fn scripted_refusals_are_each_endpoints_business_no() {
    let sim = sim().await;
    let client = client(&sim);
    sim.faults().script_next(
        IMEI_ENDPOINT,
        Fault::refusal("INVALID_IMEI", "Device not supported"),
    );
    sim.faults().script_next(
        ICCID_ENDPOINT,
        Fault::refusal("INVALID_ICCID", "SIM not recognised"),
    );
    sim.faults().script_next(
        PORT_VALIDATE_ENDPOINT,
        Fault::refusal("PORT_NOT_ELIGIBLE", "Number is not portable"),
    );
    assert_eq!(
        client
            .check_imei(&Imei::parse(IMEI).unwrap())
            .await
            .unwrap(),
        ImeiOutcome::Invalid
    );
    assert_eq!(
        client
            .validate_iccid(&IccId::parse(ICCID).unwrap())
            .await
            .unwrap(),
        IccidOutcome::Invalid
    );
    assert_eq!(
        client
            .validate_port(&Mdn::parse(NUMBER).unwrap())
            .await
            .unwrap(),
        PortEligibility::NotEligible {
            message: Some("Number is not portable".into())
        }
    );
    // Elsewhere a refusal is a 400 with the business code: `Refused`, terminal.
    let (_, customer_id) = bought(&client, &sim, &esim_order("J-REFUSE")).await;
    sim.faults().script_next(
        ACTIVATION_ENDPOINT,
        Fault::refusal("DEVICE_NOT_COMPATIBLE", "Device blocked"),
    );
    let err = client
        .activate(&Activation::Esim {
            customer_id,
            imei: Imei::parse(IMEI).unwrap(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProviderError::Refused { code: Some(c), message, .. } if c == "DEVICE_NOT_COMPATIBLE" && message == "Device blocked"),
        "{err:?}"
    );
    assert_eq!(err.class(), ErrorClass::Terminal);
    assert_eq!(sim.ledger().count_kind(EffectKind::Activation), 0);
}

#[tokio::test]
async fn plans_carry_the_documented_fields() {
    let sim = sim().await;
    let plans = client(&sim).plans().await.unwrap();
    assert_eq!(plans.len(), 3);
    let unlimited = plans
        .iter()
        .find(|p| p.service_code.as_str() == "PLAN-UNL")
        .unwrap();
    assert_eq!(unlimited.base_line_price.cents(), 4500);
    assert_eq!(unlimited.max_lines, 5);
    assert!(unlimited.fcc_label.is_some());
    assert!(unlimited.up_gradable_to.is_empty());
    assert_eq!(unlimited.down_gradable_to.len(), 2);
    let seen = sim.requests().last_to(PLANS_PATH).unwrap();
    assert_eq!(seen.method, http::Method::GET);
    assert!(seen.body.is_empty());
}

#[tokio::test]
async fn a_quote_has_the_documented_breakdown_and_orders_nothing() {
    let sim = sim().await;
    let client = client(&sim);
    let esim = client.quote(&esim_order("J-Q")).await.unwrap();
    assert_eq!(esim.one_time_charge.total_one_time_cost.cents(), 1083);
    assert_eq!(esim.one_time_charge.shipment.cents(), 0);
    assert_eq!(esim.estimated_monthly_total.cents(), 4871);
    let psim = client.quote(&psim_order("J-Q")).await.unwrap();
    let one = psim.one_time_charge;
    assert_eq!(
        one.sim_kit_cost.cents()
            + one.activation_cost.cents()
            + one.shipment.cents()
            + one.tax.cents(),
        one.total_one_time_cost.cents()
    );
    assert!(sim.ledger().is_empty());
    let seen = sim.requests().last_to("/apisvc/v0/product/quote").unwrap();
    assert!(
        seen.json_field_names()
            .contains(&"shippingAddress".to_owned())
    );

    // An unknown plan is a business refusal.
    let mut withdrawn = esim_order("J-Q");
    withdrawn.plan_id = PlanId::new("PLAN-OLD").unwrap();
    let err = client.quote(&withdrawn).await.unwrap_err();
    assert_eq!(
        err.refusal_code(),
        Some(error_code::PLAN_NOT_AVAILABLE),
        "{err:?}"
    );
}
