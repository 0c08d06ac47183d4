//! Sightline signaling: the axum server. WebSocket signaling at `/ws` (publishers register
//! cameras, viewers subscribe, both exchange SDP and ICE with the SFU it drives), the REST API
//! (`/api/cameras`, `/api/stats`) and the static web client, in [`server`].
//!
//! What the server speaks is defined in `sightline-protocol` (`wire` for signaling, `control`
//! for camera control); this crate decides who may do what (control keys, camera
//! registration) and hands media to `sightline-sfu`.

pub mod server;
