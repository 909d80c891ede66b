#![allow(clippy::unwrap_used)] // Tests: a panic is the failure report.

use std::time::Duration;

use chorus_wire::Prio;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::*;

const SECRET: &str = "test-secret-of-reasonable-length";

fn jwt_auth() -> Authenticator {
    Authenticator::new(&AuthMode::Jwt {
        secret: SECRET.to_string(),
    })
    .unwrap()
}

fn sign(alg: Algorithm, secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn now() -> u64 {
    unix_now()
}

/// Unpadded base64url, to hand-craft tokens the JWT library refuses to make.
fn b64url_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn good_token_gives_user_and_roles() {
    let token = issue_token(
        SECRET,
        "alice",
        Roles::NONE.with(Role::Vip).with(Role::Paid),
        Duration::from_secs(60),
    )
    .unwrap();
    let id = jwt_auth().authenticate(&token).unwrap();
    assert_eq!(id.user, "alice");
    assert!(id.roles.contains(Role::Vip) && id.roles.contains(Role::Paid));
    assert!(!id.roles.contains(Role::Admin));
    assert_eq!(id.roles.prio(), Prio::Paid);
}

#[test]
fn token_without_roles_is_an_ordinary_user() {
    let token = sign(
        Algorithm::HS256,
        SECRET,
        &json!({"sub": "bob", "exp": now() + 60}),
    );
    let id = jwt_auth().authenticate(&token).unwrap();
    assert_eq!(
        id,
        Identity {
            user: "bob".into(),
            roles: Roles::NONE
        }
    );
    assert_eq!(id.roles.prio(), Prio::Normal);
}

#[test]
fn unknown_roles_are_ignored() {
    let claims =
        json!({"sub": "carol", "exp": now() + 60, "roles": ["system", "superuser", "mod"]});
    let id = jwt_auth()
        .authenticate(&sign(Algorithm::HS256, SECRET, &claims))
        .unwrap();
    assert_eq!(id.roles, Roles::NONE.with(Role::System).with(Role::Mod));
    assert_eq!(id.roles.prio(), Prio::System);
}

#[test]
fn roles_that_are_not_a_list_of_strings_are_refused() {
    for roles in [json!("vip"), json!([1, 2]), json!({"vip": true})] {
        let claims = json!({"sub": "carol", "exp": now() + 60, "roles": roles});
        let err = jwt_auth()
            .authenticate(&sign(Algorithm::HS256, SECRET, &claims))
            .unwrap_err();
        assert_eq!(err, AuthError::BadClaims, "roles = {roles}");
    }
}

#[test]
fn bad_signature_is_refused() {
    let token = issue_token(
        "another-secret",
        "alice",
        Roles::NONE,
        Duration::from_secs(60),
    )
    .unwrap();
    let err = jwt_auth().authenticate(&token).unwrap_err();
    assert_eq!(err, AuthError::BadSignature);
    assert_eq!(err.to_string(), "bad signature");
    assert_eq!(err.code(), ErrorCode::Unauthenticated);
}

#[test]
fn tampered_payload_is_refused() {
    let token = issue_token(SECRET, "alice", Roles::NONE, Duration::from_secs(60)).unwrap();
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = b64url_encode(
        json!({"sub": "mallory", "exp": now() + 60, "roles": ["admin"]})
            .to_string()
            .as_bytes(),
    );
    parts[1] = &forged;
    let err = jwt_auth().authenticate(&parts.join(".")).unwrap_err();
    assert_eq!(err, AuthError::BadSignature);
}

#[test]
fn expired_token_is_refused() {
    let claims = json!({"sub": "alice", "exp": now() - EXP_LEEWAY_S - 60});
    let err = jwt_auth()
        .authenticate(&sign(Algorithm::HS256, SECRET, &claims))
        .unwrap_err();
    assert_eq!(err, AuthError::Expired);
    assert_eq!(err.to_string(), "token expired");
}

#[test]
fn token_just_inside_the_leeway_is_accepted() {
    let claims = json!({"sub": "alice", "exp": now() - 1});
    assert!(
        jwt_auth()
            .authenticate(&sign(Algorithm::HS256, SECRET, &claims))
            .is_ok()
    );
}

#[test]
fn future_nbf_is_refused() {
    let claims = json!({"sub": "alice", "exp": now() + 600, "nbf": now() + 300});
    let err = jwt_auth()
        .authenticate(&sign(Algorithm::HS256, SECRET, &claims))
        .unwrap_err();
    assert_eq!(err, AuthError::NotYetValid);
}

#[test]
fn missing_exp_is_refused() {
    let err = jwt_auth()
        .authenticate(&sign(Algorithm::HS256, SECRET, &json!({"sub": "alice"})))
        .unwrap_err();
    assert_eq!(err, AuthError::MissingClaim("exp"));
    assert_eq!(err.to_string(), "token has no `exp` claim");
}

#[test]
fn non_integer_exp_is_refused() {
    let claims = json!({"sub": "alice", "exp": "tomorrow"});
    let err = jwt_auth()
        .authenticate(&sign(Algorithm::HS256, SECRET, &claims))
        .unwrap_err();
    assert!(
        matches!(err, AuthError::InvalidClaim { claim: "exp", .. }),
        "{err:?}"
    );
}

#[test]
fn missing_sub_is_refused() {
    let err = jwt_auth()
        .authenticate(&sign(Algorithm::HS256, SECRET, &json!({"exp": now() + 60})))
        .unwrap_err();
    assert_eq!(err, AuthError::MissingClaim("sub"));
}

#[test]
fn sub_that_is_not_a_valid_id_is_refused() {
    for sub in ["", "bob smith", "dm:a:b", &"x".repeat(65)] {
        let claims = json!({"sub": sub, "exp": now() + 60});
        let err = jwt_auth()
            .authenticate(&sign(Algorithm::HS256, SECRET, &claims))
            .unwrap_err();
        assert!(
            matches!(err, AuthError::InvalidClaim { claim: "sub", .. }),
            "sub {sub:?}: {err:?}"
        );
    }
    let claims = json!({"sub": 42, "exp": now() + 60});
    let err = jwt_auth()
        .authenticate(&sign(Algorithm::HS256, SECRET, &claims))
        .unwrap_err();
    assert_eq!(err, AuthError::BadClaims);
}

#[test]
fn token_with_an_audience_is_refused() {
    let claims = json!({"sub": "alice", "exp": now() + 60, "aud": "billing"});
    let err = jwt_auth()
        .authenticate(&sign(Algorithm::HS256, SECRET, &claims))
        .unwrap_err();
    assert!(
        matches!(err, AuthError::InvalidClaim { claim: "aud", .. }),
        "{err:?}"
    );
}

#[test]
fn other_hmac_algorithms_are_refused() {
    let claims = json!({"sub": "alice", "exp": now() + 60});
    for (alg, name) in [(Algorithm::HS512, "HS512"), (Algorithm::HS384, "HS384")] {
        let err = jwt_auth()
            .authenticate(&sign(alg, SECRET, &claims))
            .unwrap_err();
        assert_eq!(err, AuthError::Algorithm(name.to_string()));
        assert_eq!(
            err.to_string(),
            format!("token algorithm {name} is not accepted (only HS256)")
        );
    }
}

#[test]
fn alg_none_is_refused() {
    let header = b64url_encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64url_encode(
        json!({"sub": "mallory", "exp": now() + 60})
            .to_string()
            .as_bytes(),
    );
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        let err = jwt_auth().authenticate(&token).unwrap_err();
        assert!(
            err == AuthError::Algorithm("none".into()) || err == AuthError::Malformed,
            "{token}: {err:?}"
        );
    }
    let err = jwt_auth()
        .authenticate(&format!("{header}.{payload}."))
        .unwrap_err();
    assert_eq!(err, AuthError::Algorithm("none".into()));
}

#[test]
fn asymmetric_alg_header_is_refused_before_verification() {
    // The classic confusion: an RS256 header over a MAC made with the shared secret.
    let good = issue_token(SECRET, "alice", Roles::NONE, Duration::from_secs(60)).unwrap();
    let mut parts: Vec<&str> = good.split('.').collect();
    let header = b64url_encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    parts[0] = &header;
    let err = jwt_auth().authenticate(&parts.join(".")).unwrap_err();
    assert_eq!(err, AuthError::Algorithm("RS256".into()));
}

#[test]
fn odd_alg_names_are_not_echoed() {
    let header = b64url_encode(br#"{"alg":"<script>alert(1)</script>"}"#);
    let err = jwt_auth()
        .authenticate(&format!("{header}.e30.sig"))
        .unwrap_err();
    assert_eq!(err, AuthError::Algorithm("(unrecognised)".into()));
}

/// A correctly signed HS256 token whose header is `header` (raw JSON).
fn signed_with_header(header: &str, claims: &Value) -> String {
    let message = format!(
        "{}.{}",
        b64url_encode(header.as_bytes()),
        b64url_encode(claims.to_string().as_bytes())
    );
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{message}.{signature}")
}

#[test]
fn a_crit_header_is_refused_even_when_signed() {
    let claims = json!({"sub": "alice", "exp": now() + 60});
    // Control: the same header without `crit` is accepted.
    let plain = signed_with_header(r#"{"alg":"HS256","typ":"JWT"}"#, &claims);
    assert_eq!(jwt_auth().authenticate(&plain).unwrap().user, "alice");

    let mut header = Header::new(Algorithm::HS256);
    header.crit = Some(vec!["exp-ext".into()]);
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let err = jwt_auth().authenticate(&token).unwrap_err();
    assert_eq!(err, AuthError::CriticalHeader("(unrecognised)".into()));
    assert_eq!(err.code(), ErrorCode::Unauthenticated);

    let token = signed_with_header(
        r#"{"alg":"HS256","crit":["b64","x5","p6","q7","r8"],"b64":false}"#,
        &claims,
    );
    let err = jwt_auth().authenticate(&token).unwrap_err();
    assert_eq!(
        err.to_string(),
        "token header marks b64, x5, p6, q7, and 1 more as critical; \
         this node supports no critical header extensions"
    );
}

#[test]
fn a_malformed_crit_header_is_refused() {
    let claims = json!({"sub": "alice", "exp": now() + 60});
    for header in [
        r#"{"alg":"HS256","crit":[]}"#,
        r#"{"alg":"HS256","crit":"b64"}"#,
        r#"{"alg":"HS256","crit":null}"#,
        r#"{"alg":"HS256","crit":[1]}"#,
        r#"{"alg":"HS256","crit":["b64", {}]}"#,
        r#"{"alg":"HS256","crit":{}}"#,
    ] {
        let token = signed_with_header(header, &claims);
        assert_eq!(
            jwt_auth().authenticate(&token).unwrap_err(),
            AuthError::BadCritical,
            "{header}"
        );
    }
    // Two `crit` members: whichever a parser keeps, the token is refused.
    let token = signed_with_header(r#"{"alg":"HS256","crit":["b64"],"crit":null}"#, &claims);
    assert!(jwt_auth().authenticate(&token).is_err());
}

#[test]
fn garbage_is_malformed() {
    let auth = jwt_auth();
    for token in [
        "garbage",
        "a.b",
        "a.b.c.d",
        "!!!.???.***",
        "e30.e30.e30",
        "....",
        "\u{1F600}.x.y",
    ] {
        assert_eq!(
            auth.authenticate(token).unwrap_err(),
            AuthError::Malformed,
            "{token:?}"
        );
    }
    assert_eq!(auth.authenticate("").unwrap_err(), AuthError::Empty);
}

#[test]
fn dev_mode_token_is_the_user_id() {
    let auth = Authenticator::new(&AuthMode::Dev).unwrap();
    assert!(auth.is_dev());
    assert_eq!(
        auth.authenticate("alice.b-c_9").unwrap(),
        Identity {
            user: "alice.b-c_9".into(),
            roles: Roles::NONE
        }
    );
}

#[test]
fn dev_mode_refuses_ids_with_forbidden_chars() {
    let auth = Authenticator::dev();
    for token in ["bob smith", "user:bob", "a/b", "é", "a\0b", &"x".repeat(65)] {
        let err = auth.authenticate(token).unwrap_err();
        assert!(matches!(err, AuthError::BadUserId(_)), "{token:?}: {err:?}");
        assert_eq!(err.code(), ErrorCode::Unauthenticated);
    }
    assert_eq!(auth.authenticate("").unwrap_err(), AuthError::Empty);
}

#[test]
fn dev_mode_does_not_read_jwts() {
    let token = issue_token(
        SECRET,
        "alice",
        Roles::NONE.with(Role::Admin),
        Duration::from_secs(60),
    )
    .unwrap();
    assert!(matches!(
        Authenticator::dev().authenticate(&token),
        Err(AuthError::BadUserId(_))
    ));
}

#[test]
fn empty_secret_is_a_setup_error() {
    let err = Authenticator::new(&AuthMode::Jwt {
        secret: String::new(),
    })
    .unwrap_err();
    assert_eq!(err, AuthSetupError::EmptySecret);
    assert_eq!(
        issue_token("", "alice", Roles::NONE, Duration::from_secs(1)),
        Err(IssueError::EmptySecret)
    );
}

#[test]
fn a_secret_shorter_than_32_bytes_is_a_setup_error() {
    let short = "s".repeat(MIN_SECRET_LEN - 1);
    let err = Authenticator::new(&AuthMode::Jwt { secret: short }).unwrap_err();
    assert_eq!(err, AuthSetupError::ShortSecret(31));
    assert_eq!(
        err.to_string(),
        "auth.secret is 31 bytes long; it must be at least 32 bytes"
    );
    let long = "s".repeat(MIN_SECRET_LEN);
    assert!(Authenticator::new(&AuthMode::Jwt { secret: long }).is_ok());
}

#[test]
fn issue_refuses_invalid_users() {
    assert!(matches!(
        issue_token(SECRET, "no spaces", Roles::NONE, Duration::from_secs(1)),
        Err(IssueError::User(_))
    ));
}

#[test]
fn built_from_config() {
    let mut config = chorus_config::AuthConfig::default();
    assert!(Authenticator::from_config(&config).unwrap().is_dev());
    config.mode = chorus_config::AuthMode::Jwt;
    assert_eq!(
        Authenticator::from_config(&config).unwrap_err(),
        AuthSetupError::EmptySecret
    );
    config.secret = Some(SECRET.into());
    let auth = Authenticator::from_config(&config).unwrap();
    let token = issue_token(SECRET, "dora", Roles::NONE, Duration::from_secs(60)).unwrap();
    assert_eq!(auth.authenticate(&token).unwrap().user, "dora");
}

#[test]
fn secret_is_not_printed() {
    let shown = format!(
        "{:?}",
        AuthMode::Jwt {
            secret: SECRET.into()
        }
    );
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(!format!("{:?}", jwt_auth()).contains(SECRET));
}

#[test]
fn roles_parse_and_print() {
    let roles: Roles = "vip, paid".parse().unwrap();
    assert_eq!(roles, Roles::NONE.with(Role::Vip).with(Role::Paid));
    assert_eq!(roles.to_string(), "vip,paid");
    assert_eq!("".parse::<Roles>().unwrap(), Roles::NONE);
    assert_eq!("vip,root".parse::<Roles>(), Err(UnknownRole("root".into())));
    assert_eq!(
        Roles::from_claim(["admin", "nope"]),
        Roles::NONE.with(Role::Admin)
    );
    assert_eq!(Roles::NONE.with(Role::Vip).prio(), Prio::Vip);
    assert_eq!(
        Roles::NONE.with(Role::Mod).with(Role::Admin).prio(),
        Prio::Normal
    );
}

#[test]
fn base64url_decoder_matches_encoder() {
    for len in 0..40u8 {
        let bytes: Vec<u8> = (0..len)
            .map(|i| i.wrapping_mul(37).wrapping_add(200))
            .collect();
        assert_eq!(b64url_decode(&b64url_encode(&bytes)).unwrap(), bytes);
    }
    assert_eq!(b64url_decode("a"), None);
    assert_eq!(b64url_decode("ab=="), None);
}
