//! The OpenAPI 3.1 document of the admin API, built from [`Endpoint::ALL`] and
//! the schemas utoipa derives from the request and answer types, so that it
//! cannot describe a route the node does not serve or a shape it does not send.
//!
//! Every JSON answer's schema is a `$ref` into `#/components/schemas/`; a
//! validator resolves them against the document itself.

use std::collections::BTreeMap;

use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ComponentsBuilder, ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi, OpenApiBuilder, Paths, Ref, RefOr, Required};

use crate::error::ErrorBody;
use crate::routes::{Access, Answer, Endpoint, Method, SchemaOf};

/// The name of the bearer scheme in `components.securitySchemes`.
pub const BEARER_SCHEME: &str = "admin_token";

/// The media type of a JSON answer.
pub const JSON: &str = "application/json";

/// The media type of a text answer or body.
pub const TEXT: &str = "text/plain";

/// The document, as the node serves it.
pub fn document() -> OpenApi {
    let mut schemas = Vec::new();
    SchemaOf::of::<ErrorBody>().collect(&mut schemas);
    let mut paths = Paths::new();
    for endpoint in Endpoint::ALL {
        let route = endpoint.route();
        let mut operation = OperationBuilder::new()
            .operation_id(Some(format!("{endpoint:?}")))
            .summary(Some(route.summary));
        for name in route.params() {
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
            );
        }
        if let Some(body) = route.body {
            let (media, schema) = content(body, &mut schemas);
            operation = operation.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(media, ContentBuilder::new().schema(Some(schema)).build())
                    .build(),
            ));
        }
        let (media, schema) = content(route.answer, &mut schemas);
        operation = operation.response(
            "200",
            ResponseBuilder::new()
                .description("Success")
                .content(media, ContentBuilder::new().schema(Some(schema)).build()),
        );
        let mut errors: BTreeMap<u16, &str> =
            route.errors.iter().map(|&s| (s, describe(s))).collect();
        if route.access == Access::Bearer {
            errors.insert(401, describe(401));
            operation = operation.security(SecurityRequirement::new(
                BEARER_SCHEME,
                Vec::<String>::new(),
            ));
        }
        for (status, description) in errors {
            let mut response = ResponseBuilder::new().description(description);
            response = if endpoint == Endpoint::Healthz {
                response.content(
                    TEXT,
                    ContentBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                        .build(),
                )
            } else {
                response.content(
                    JSON,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
            };
            operation = operation.response(status.to_string(), response);
        }
        if route.access == Access::Bearer {
            operation = operation.response(
                "404",
                ResponseBuilder::new().description(
                    "The admin API is disabled (no [admin] token): an empty body. With it, \
                     an unknown path under /admin/ answers 404 with an ErrorBody.",
                ),
            );
        }
        let method = match route.method {
            Method::Get => HttpMethod::Get,
            Method::Post => HttpMethod::Post,
        };
        paths.add_path_operation(route.path, vec![method], operation.build());
    }
    schemas.sort_by(|a, b| a.0.cmp(&b.0));
    schemas.dedup_by(|a, b| a.0 == b.0);
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .security_scheme(
            BEARER_SCHEME,
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Chorus admin API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The operator API of a Chorus node (docs/operations.md, \"Admin API\").",
                )),
        )
        .paths(paths)
        .components(Some(components))
        .build()
}

/// The media type and schema of a body or answer, its schemas collected.
fn content(
    answer: Answer,
    schemas: &mut Vec<(String, RefOr<utoipa::openapi::schema::Schema>)>,
) -> (&'static str, RefOr<utoipa::openapi::schema::Schema>) {
    match answer {
        Answer::Json(schema) => {
            schema.collect(schemas);
            (JSON, Ref::from_schema_name(schema.name()).into())
        }
        Answer::Text => (TEXT, ObjectBuilder::new().schema_type(Type::String).into()),
    }
}

fn describe(status: u16) -> &'static str {
    match status {
        400 => "The request is malformed or names something invalid",
        401 => "No admin bearer token, or the wrong one",
        404 => "Not found",
        500 => "The operation failed",
        503 => "The node cannot answer now",
        _ => "Failure",
    }
}
