//! Sightline signaling: the axum server. WebSocket signaling at `/ws` (publishers register
//! cameras, viewers subscribe, both exchange SDP and ICE with the SFU it drives), the REST API
//! (`/api/cameras`, camera control and status, `/api/stats`) and the static web client, in
//! [`server`], over HTTP or HTTPS.
//!
//! What the server speaks is defined in `sightline-protocol` (`wire` for signaling, `control`
//! for camera control); this crate decides who may do what ([`auth`]: tokens, roles, camera
//! scopes) and hands media to `sightline-sfu`.

pub mod auth;
pub mod ice;
pub mod mse;
pub mod server;
