//! Step 17: the eSIM QR code ("QR code enquiry", line 408; "re-inquiry for QR code if any
//! delay in activation process", line 406).
//!
//! Wire (*ours*): body `{"orderId", "msisdn"}`; ready: `{"code": "0000", "qrCode":
//! "LPA:1$<SM-DP+>$<matching id>", "iccid", "qrImage": <base64 image, optional>}`; not ready:
//! `{"code": "1701", "message", "retryAfterSeconds"}`.

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::types::{Iccid, Msisdn, OrderId};
use super::{Endpoint, MobilyClient, codes, ops, paths};
use crate::error::ProviderError;
use crate::http::Effect;

/// Longest `retryAfterSeconds` we honour (10 minutes).
pub const MAX_QR_RETRY_AFTER: Duration = Duration::from_secs(600);
/// Longest activation code accepted, in bytes.
pub const MAX_ACTIVATION_CODE_BYTES: usize = 512;
/// Largest QR image accepted (base64), in bytes.
pub const MAX_QR_IMAGE_BYTES: usize = 256 * 1024;

const QR: Endpoint = Endpoint::post(ops::QR_CODE, paths::QR_GET, Effect::ReadOnly);

/// Wire structures.
pub mod wire {
    use super::*;

    /// Body of qr/get.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct QrRequest {
        /// The order.
        pub order_id: OrderId,
        /// Its line.
        pub msisdn: Msisdn,
    }

    /// Answer of qr/get (also the body of `1701`).
    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct QrResponse {
        /// The activation code (`LPA:1$...`), when ready.
        #[serde(default)]
        pub qr_code: Option<String>,
        /// The eSIM profile, when ready.
        #[serde(default)]
        pub iccid: Option<Iccid>,
        /// The QR image, base64 (PNG from Mobily; the simulator sends an SVG), when ready.
        #[serde(default)]
        pub qr_image: Option<String>,
        /// When not ready: when to ask again.
        #[serde(default)]
        pub retry_after_seconds: Option<u64>,
    }
}

/// A ready eSIM QR code. The activation code installs the eSIM once, so it is a secret:
/// `Debug` hides it.
#[derive(Clone)]
pub struct QrCode {
    activation_code: SecretString,
    /// The eSIM profile.
    pub iccid: Iccid,
    /// The QR image, base64, when Mobily sends one.
    pub image_base64: Option<String>,
}

impl fmt::Debug for QrCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QrCode")
            .field("iccid", &self.iccid)
            .field("image_bytes", &self.image_base64.as_ref().map(String::len))
            .finish_non_exhaustive()
    }
}

impl QrCode {
    /// The activation code (`LPA:1$...`), to render or hand to the customer only.
    pub fn activation_code(&self) -> &str {
        self.activation_code.expose_secret()
    }
}

/// What the QR inquiry found.
#[derive(Debug, Clone)]
pub enum QrOutcome {
    /// Not generated yet: ask again (after `retry_after` when Mobily says, capped at
    /// [`MAX_QR_RETRY_AFTER`]).
    NotReady {
        /// Mobily's hint.
        retry_after: Option<Duration>,
    },
    /// Ready.
    Ready(QrCode),
}

impl MobilyClient {
    /// Step 17: the eSIM QR code of an order, or "not ready yet".
    pub async fn qr_code(
        &self,
        order: &OrderId,
        msisdn: &Msisdn,
    ) -> Result<QrOutcome, ProviderError> {
        let body = wire::QrRequest {
            order_id: order.clone(),
            msisdn: msisdn.clone(),
        };
        let answer = self.call(QR, &body, None).await?;
        let parsed: wire::QrResponse = answer.body().unwrap_or_default();
        if answer.code == codes::QR_NOT_READY {
            return Ok(QrOutcome::NotReady {
                retry_after: parsed
                    .retry_after_seconds
                    .map(|s| Duration::from_secs(s).min(MAX_QR_RETRY_AFTER)),
            });
        }
        answer.success_or_refused()?;
        let (Some(code), Some(iccid)) = (parsed.qr_code, parsed.iccid) else {
            return Err(answer.protocol("QR answer without qrCode and iccid"));
        };
        let code_ok =
            code.starts_with("LPA:") && code.len() <= MAX_ACTIVATION_CODE_BYTES && code.is_ascii();
        if !code_ok {
            return Err(answer.protocol("QR answer with an invalid activation code"));
        }
        let image_base64 = parsed.qr_image.filter(|i| i.len() <= MAX_QR_IMAGE_BYTES);
        Ok(QrOutcome::Ready(QrCode {
            activation_code: SecretString::from(code),
            iccid,
            image_base64,
        }))
    }
}
