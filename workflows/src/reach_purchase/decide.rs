//! J2's decisions, without I/O: what a provider answer means for the journey.
//! The workflow's steps call the provider, then ask these functions what to
//! do; the functions are tested with plain values below.

use handover_adapters::reach::{ActivationStatus, CustomerId, DeviceMode, PurchaseStatus, SimType};

/// Which SIM to buy for a device of `mode` when the customer asked for
/// `prefer`: the guide's "use mode to decide PSIM vs ESIM", eSIM when the
/// device takes both and the customer did not choose.
pub fn choose_sim(mode: DeviceMode, prefer: Option<SimType>) -> Result<SimType, String> {
    match (mode, prefer) {
        (DeviceMode::Esim, None) => Ok(SimType::Esim),
        (DeviceMode::Psim, None) => Ok(SimType::Psim),
        (DeviceMode::Both, None) => Ok(SimType::Esim),
        (mode, Some(sim)) if mode.supports(sim) => Ok(sim),
        (mode, Some(sim)) => Err(format!(
            "the device takes only a {} SIM, but the customer asked for {}",
            mode.as_str(),
            sim.as_str()
        )),
    }
}

/// What a purchase status means while waiting for the payment link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkDecision {
    /// No link yet: poll again.
    Poll,
    /// Send the customer to `url`, valid until `expires`.
    Link {
        /// `link.url`.
        url: String,
        /// `link.expireDate`.
        expires: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// The payment already moved on (paid, settled or failed): go and read
    /// its result.
    Settling,
}

/// See [`LinkDecision`].
pub fn on_link_status(status: &PurchaseStatus) -> LinkDecision {
    match status {
        PurchaseStatus::Initiated | PurchaseStatus::PaymentPending { link: None, .. } => {
            LinkDecision::Poll
        }
        PurchaseStatus::PaymentPending {
            link: Some(link), ..
        } => LinkDecision::Link {
            url: link.url.to_string(),
            expires: link.expire_date,
        },
        PurchaseStatus::PaymentProcessing { .. }
        | PurchaseStatus::Completed(_)
        | PurchaseStatus::Failed { .. } => LinkDecision::Settling,
    }
}

/// What a purchase status means once the customer was sent to pay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentDecision {
    /// Not settled: poll again (or take the callback).
    Poll,
    /// Paid: the subscriber exists.
    Completed {
        /// The new subscriber.
        customer_id: CustomerId,
        /// The SIM Reach says was bought, if it said.
        sim_type: Option<SimType>,
    },
    /// Declined or expired: `paymentStatusDesc`.
    Failed {
        /// Why, for the customer.
        desc: String,
    },
}

/// See [`PaymentDecision`].
pub fn on_payment_status(status: &PurchaseStatus) -> PaymentDecision {
    match status {
        PurchaseStatus::Initiated
        | PurchaseStatus::PaymentPending { .. }
        | PurchaseStatus::PaymentProcessing { .. } => PaymentDecision::Poll,
        PurchaseStatus::Completed(done) => PaymentDecision::Completed {
            customer_id: done.customer_id.clone(),
            sim_type: done.sim_type,
        },
        PurchaseStatus::Failed {
            payment_status,
            payment_status_desc,
        } => PaymentDecision::Failed {
            desc: payment_status_desc
                .clone()
                .or_else(|| payment_status.clone())
                .unwrap_or_else(|| "the payment failed without a description".to_owned()),
        },
    }
}

/// What a line's status means after an activation was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivationDecision {
    /// 2: done, with the line's number.
    Active {
        /// `mobileNo`.
        mobile_no: String,
    },
    /// 1: poll again (or take the callback).
    Poll,
    /// 0: Reach has no activation for the line: send it (again).
    Resend,
    /// 8: "show error, contact support".
    Failed {
        /// `activationMsg`.
        message: String,
    },
    /// A port-in code on a plain purchase: a person must look.
    Unexpected {
        /// The code.
        code: i64,
    },
}

/// See [`ActivationDecision`].
pub fn on_activation_status(status: &ActivationStatus) -> ActivationDecision {
    match status {
        ActivationStatus::Active { mobile_no, .. } => ActivationDecision::Active {
            mobile_no: mobile_no.as_str().to_owned(),
        },
        ActivationStatus::InProgress => ActivationDecision::Poll,
        ActivationStatus::Inactive => ActivationDecision::Resend,
        ActivationStatus::Failed { activation_msg } => ActivationDecision::Failed {
            message: activation_msg
                .clone()
                .unwrap_or_else(|| "no message".to_owned()),
        },
        other => ActivationDecision::Unexpected {
            code: other.code().code(),
        },
    }
}

#[cfg(test)]
mod tests {
    use handover_adapters::reach::{CompletedPurchase, PaymentLink};
    use url::Url;

    use super::*;

    #[test]
    fn the_device_mode_decides_the_sim() {
        assert_eq!(choose_sim(DeviceMode::Both, None), Ok(SimType::Esim));
        assert_eq!(choose_sim(DeviceMode::Psim, None), Ok(SimType::Psim));
        assert_eq!(
            choose_sim(DeviceMode::Both, Some(SimType::Psim)),
            Ok(SimType::Psim)
        );
        let refused = choose_sim(DeviceMode::Psim, Some(SimType::Esim)).unwrap_err();
        assert!(refused.contains("only a PSIM"), "{refused}");
    }

    #[test]
    fn link_polls_until_the_url_is_there() {
        assert_eq!(
            on_link_status(&PurchaseStatus::Initiated),
            LinkDecision::Poll
        );
        assert_eq!(
            on_link_status(&PurchaseStatus::PaymentPending {
                link: None,
                payment_status: None
            }),
            LinkDecision::Poll
        );
        let url = Url::parse("https://pay.example/x").unwrap();
        assert!(matches!(
            on_link_status(&PurchaseStatus::PaymentPending {
                link: Some(PaymentLink {
                    url,
                    expire_date: None
                }),
                payment_status: None
            }),
            LinkDecision::Link { .. }
        ));
        assert_eq!(
            on_link_status(&PurchaseStatus::PaymentProcessing {
                payment_status: None
            }),
            LinkDecision::Settling
        );
    }

    #[test]
    fn payment_results_map_to_decisions() {
        let customer_id = CustomerId::new("CUS-1").unwrap();
        let done = PurchaseStatus::Completed(CompletedPurchase {
            customer_id: customer_id.clone(),
            client_account_id: None,
            sim_type: Some(SimType::Esim),
            shipment_status: None,
            payment_status: None,
        });
        assert_eq!(
            on_payment_status(&done),
            PaymentDecision::Completed {
                customer_id,
                sim_type: Some(SimType::Esim)
            }
        );
        assert_eq!(
            on_payment_status(&PurchaseStatus::Failed {
                payment_status: Some("DECLINED".into()),
                payment_status_desc: Some("Card declined".into())
            }),
            PaymentDecision::Failed {
                desc: "Card declined".into()
            }
        );
        assert_eq!(
            on_payment_status(&PurchaseStatus::PaymentProcessing {
                payment_status: None
            }),
            PaymentDecision::Poll
        );
    }

    #[test]
    fn activation_codes_map_to_decisions() {
        assert_eq!(
            on_activation_status(&ActivationStatus::InProgress),
            ActivationDecision::Poll
        );
        assert_eq!(
            on_activation_status(&ActivationStatus::Inactive),
            ActivationDecision::Resend
        );
        assert_eq!(
            on_activation_status(&ActivationStatus::Failed {
                activation_msg: Some("SIM blocked".into())
            }),
            ActivationDecision::Failed {
                message: "SIM blocked".into()
            }
        );
        assert_eq!(
            on_activation_status(&ActivationStatus::PortingInProgress),
            ActivationDecision::Unexpected { code: 9 }
        );
    }
}
