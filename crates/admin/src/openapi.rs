//! The OpenAPI 3.1 document the admin API serves at `/openapi.json`.

use serde_json::{json, Value};

/// The document.
pub fn document() -> Value {
    let error = json!({ "$ref": "#/components/schemas/Error" });
    let version = json!({ "$ref": "#/components/schemas/Version" });
    let unauthorized = json!({ "description": "missing or unknown bearer token", "content": { "application/json": { "schema": error } } });
    let forbidden = json!({ "description": "the token's role does not allow this request", "content": { "application/json": { "schema": error } } });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "corsgate admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Versioned, audited CORS configuration. Every request except GET /openapi.json and GET /ready needs `Authorization: Bearer <token>`; GET (and POST to /api/v1/validate and /api/v1/explain) needs the viewer role, other POST and DELETE the editor role. The console under /ui/ signs in at POST /ui/login and then authenticates with a session cookie instead; a cookie-authenticated change needs X-CSRF-Token and a same-site Origin."
        },
        "security": [{ "bearer": [] }],
        "paths": {
            "/api/v1/versions": {
                "get": {
                    "summary": "History of configuration versions, oldest first",
                    "responses": { "200": { "description": "versions", "content": { "application/json": { "schema": { "type": "object", "properties": { "versions": { "type": "array", "items": { "$ref": "#/components/schemas/VersionSummary" } } } } } } }, "401": unauthorized, "403": forbidden }
                },
                "post": {
                    "summary": "Validate, lint and test a configuration, then apply it atomically as a new version",
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["base", "content"], "additionalProperties": false, "properties": { "base": { "type": ["integer", "null"], "description": "the version this change was based on" }, "comment": { "type": "string" }, "content": { "type": "string", "description": "the configuration YAML" } } } } } },
                    "responses": {
                        "201": { "description": "applied; `propagation` lists tightenings and how long browsers may keep old preflight answers", "content": { "application/json": { "schema": version } } },
                        "400": { "description": "malformed JSON (with line and column) or a refused configuration (each error with its location)", "content": { "application/json": { "schema": error } } },
                        "401": unauthorized, "403": forbidden,
                        "409": { "description": "stale base: another change was applied first", "content": { "application/json": { "schema": error } } },
                        "408": { "description": "the body did not arrive within idleTimeoutMs", "content": { "application/json": { "schema": error } } },
                        "413": { "description": "body over the limit (refused before it is read when Content-Length declares it)", "content": { "application/json": { "schema": error } } },
                        "500": { "description": "the gateway could not apply it; nothing was stored", "content": { "application/json": { "schema": error } } }
                    }
                }
            },
            "/api/v1/versions/active": { "get": { "summary": "The active version", "responses": { "200": { "description": "version", "content": { "application/json": { "schema": version } } }, "401": unauthorized, "403": forbidden, "404": { "description": "none yet" } } } },
            "/api/v1/versions/{id}": { "get": { "summary": "One version", "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } }], "responses": { "200": { "description": "version", "content": { "application/json": { "schema": version } } }, "401": unauthorized, "403": forbidden, "404": { "description": "no such version" } } } },
            "/api/v1/rollback": { "post": {
                "summary": "Create a new version equal to an old one and apply it",
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["base", "to"], "additionalProperties": false, "properties": { "base": { "type": ["integer", "null"] }, "to": { "type": "integer" }, "comment": { "type": "string" } } } } } },
                "responses": { "201": { "description": "rolled back", "content": { "application/json": { "schema": version } } }, "400": { "description": "malformed" }, "401": unauthorized, "403": forbidden, "404": { "description": "no such version" }, "409": { "description": "stale base" } }
            } },
            "/api/v1/diff": { "get": {
                "summary": "Semantic diff between two versions: per policy, origins, methods, headers, credentials, max-age…; rules whose policy binding changed",
                "parameters": [{ "name": "from", "in": "query", "required": true, "schema": { "type": "integer" } }, { "name": "to", "in": "query", "required": true, "schema": { "type": "integer" } }],
                "responses": { "200": { "description": "diff" }, "400": { "description": "missing parameters" }, "401": unauthorized, "403": forbidden, "404": { "description": "no such version" } }
            } },
            "/api/v1/shadow": {
                "post": {
                    "summary": "Evaluate a candidate configuration beside the active one on live traffic, changing no response (R29)",
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["content"], "additionalProperties": false, "properties": { "content": { "type": "string" }, "comment": { "type": "string" } } } } } },
                    "responses": { "201": { "description": "shadowing" }, "400": { "description": "malformed or refused" }, "401": unauthorized, "403": forbidden }
                },
                "get": { "summary": "What the candidate would newly refuse or newly allow, per policy and origin, with counts and a sample request", "responses": { "200": { "description": "report" }, "401": unauthorized, "403": forbidden, "404": { "description": "no candidate" } } },
                "delete": { "summary": "Stop shadowing", "responses": { "200": { "description": "stopped" }, "401": unauthorized, "403": forbidden } }
            },
            "/api/v1/shadow/promote": { "post": {
                "summary": "Apply the shadowed candidate as a new version (same path as POST /api/v1/versions) and stop shadowing",
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["base"], "additionalProperties": false, "properties": { "base": { "type": ["integer", "null"] }, "comment": { "type": "string" } } } } } },
                "responses": { "201": { "description": "promoted", "content": { "application/json": { "schema": version } } }, "401": unauthorized, "403": forbidden, "404": { "description": "no candidate" }, "409": { "description": "stale base" } }
            } },
            "/api/v1/validate": { "post": {
                "summary": "Everything an apply would say about a candidate, applying nothing: each error and lint with line and column, policy tests run, and when valid the semantic diff and the tightenings against the active version (viewer role: it changes nothing)",
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["content"], "additionalProperties": false, "properties": { "content": { "type": "string" } } } } } },
                "responses": { "200": { "description": "`valid`, `errors` [{line, column, path, id, reason, message}], `lints`, `policyTests`, `base`, `diff`, `propagation`" }, "400": { "description": "malformed JSON" }, "401": unauthorized, "403": forbidden }
            } },
            "/api/v1/effective": { "get": { "summary": "The active version's vServices, listeners and rules, each rule with the policy that applies and its binding level (rule, path, host, vService, global, none), chosen by the route compiler for a request the rule matches", "responses": { "200": { "description": "effective policies" }, "401": unauthorized, "403": forbidden, "404": { "description": "no active version" } } } },
            "/api/v1/explain": { "post": {
                "summary": "`corsgate explain --json` against the active version: the legs a browser sends, corsgate's answer to each and the browser's verdict with its reasons (viewer role: it changes nothing)",
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["origin", "method", "url"], "additionalProperties": false, "properties": { "origin": { "type": "string" }, "method": { "type": "string" }, "url": { "type": "string" }, "headers": { "type": "array", "items": { "type": "array", "items": { "type": "string" }, "minItems": 2, "maxItems": 2 } }, "credentials": { "type": "boolean" } } } } } },
                "responses": { "200": { "description": "`version` and `explanation`, the CLI's JSON" }, "400": { "description": "malformed or not explainable" }, "401": unauthorized, "403": forbidden, "404": { "description": "no active version" } }
            } },
            "/ui/login": { "post": {
                "summary": "Console sign-in: a token in the body opens a session (cookie `corsgate_session`, HttpOnly, SameSite=Strict, Path=/, Secure with TLS); needs an Origin equal to the listener's",
                "security": [],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["token"], "additionalProperties": false, "properties": { "token": { "type": "string" } } } } } },
                "responses": { "200": { "description": "`name`, `role`, `csrf` (send it as X-CSRF-Token on every change)" }, "401": { "description": "token not accepted" }, "403": { "description": "another origin" } }
            } },
            "/ui/session": { "get": { "summary": "The console session of the cookie: `signedIn`, and when signed in `name`, `role`, `csrf`", "security": [], "responses": { "200": { "description": "session" } } } },
            "/ui/logout": { "post": { "summary": "End the console session (X-CSRF-Token and same Origin needed)", "security": [], "responses": { "200": { "description": "signed out" }, "403": { "description": "no CSRF token" } } } },
            "/live": { "get": { "summary": "Liveness: 200 while the process serves (no token needed)", "security": [], "responses": { "200": { "description": "live" } } } },
            "/fleet": { "get": { "summary": "Every instance sharing the store (etcd: registered under a lease; SQLite: this one), with the version it serves and its state against the active version: in-sync, behind (behindBy), failing (failed.version, failed.error), diverged", "responses": { "200": { "description": "the fleet" }, "503": { "description": "the shared store cannot be read; the body holds this instance's own record (selfRecord)" } } } },
            "/ready": { "get": { "summary": "Readiness: 200 while the store verified at start-up, 503 with the problem when tampering was found (no token needed)", "security": [], "responses": { "200": { "description": "ready" }, "503": { "description": "the store failed verification" } } } },
            "/metrics": { "get": { "summary": "Prometheus metrics (text format)", "responses": { "200": { "description": "metrics", "content": { "text/plain": {} } }, "401": unauthorized, "403": forbidden } } },
            "/api/v1/audit": { "get": { "summary": "The audit log, oldest first", "responses": { "200": { "description": "entries" }, "401": unauthorized, "403": forbidden } } },
            "/api/v1/audit/verify": { "get": { "summary": "Verify the store: hash chain, signatures, every version against its hash and its audit entry", "responses": { "200": { "description": "`intact`, the head (seq, hash), and every problem named" }, "401": unauthorized, "403": forbidden } } }
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "string" }, "errors": { "type": "array", "items": { "type": "string" } }, "line": { "type": "integer" }, "column": { "type": "integer" } } },
                "VersionSummary": { "type": "object", "properties": { "id": { "type": "integer" }, "parent": { "type": ["integer", "null"] }, "author": { "type": "string" }, "createdAt": { "type": "string", "format": "date-time" }, "comment": { "type": "string" }, "contentHash": { "type": "string" } } },
                "Version": { "allOf": [{ "$ref": "#/components/schemas/VersionSummary" }, { "type": "object", "properties": { "content": { "type": "string" }, "lints": { "type": "array" }, "policyTests": { "type": "object" }, "propagation": { "type": "array" } } }] }
            }
        }
    })
}
