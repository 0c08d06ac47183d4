//! A session's media connection through the SFU: answering its offer, restarting its ICE,
//! resuming one an earlier socket held, and letting go of it. The rest of the session (its
//! socket, the messages, the registry) is in the parent module.

use std::time::SystemTime;

use sightline_protocol::wire::{MediaPath, ServerMessage, WireError};
use sightline_sfu::{VideoCodec, ViewerAccess};

use super::{sfu_error, wrong_state, Eviction, Role, Session};
use crate::auth::Role as Needs;
use crate::server::resume::{Resumable, Resumes, RESUME_GRACE};

impl Session {
    /// Answer an offer: the publisher's media ingest or the viewer's media egress.
    pub(super) async fn offer(&mut self, sdp: &str) -> Result<Vec<ServerMessage>, WireError> {
        let (camera_id, old_peer, viewer_access) = match &self.role {
            Role::Idle => {
                return Err(wrong_state(
                    "register (publisher) or subscribe (viewer) before sending an offer",
                ))
            }
            Role::Publisher { camera_id, peer } => (camera_id.clone(), *peer, None),
            Role::Viewer {
                camera_id,
                peer,
                access,
                ..
            } => (camera_id.clone(), *peer, Some(*access)),
        };
        if let Some(publisher) = self.direct_publisher()? {
            let msg = ServerMessage::DirectOffer {
                viewer: self.id,
                sdp: sdp.to_owned(),
                may_control: viewer_access == Some(ViewerAccess::Control),
            };
            tracing::info!(session = self.id, camera = %camera_id, publisher, "direct offer relayed to the publisher");
            return self.to_publisher(publisher, msg);
        }
        let publishing = viewer_access.is_none();
        // A new offer starts a new peer connection; the old one goes.
        if old_peer.is_some() {
            self.let_go_of_peer(false).await;
            self.sent_vp8(false);
        }
        let answer = match viewer_access {
            None => self.state.sfu.publish(&camera_id, sdp).await,
            Some(access) => self.state.sfu.subscribe(&camera_id, sdp, access).await,
        }
        .map_err(sfu_error)?;
        tracing::info!(session = self.id, camera = %camera_id, peer = %answer.peer, publishing, codec = ?answer.codec, "offer answered");
        let key = viewer_access.map(|access| {
            self.resumes().issue(Resumable {
                peer: answer.peer,
                camera_id: camera_id.clone(),
                access,
                owner: self.id,
            })
        });
        match &mut self.role {
            Role::Publisher { peer, .. } => *peer = Some(answer.peer),
            Role::Viewer { peer, resume, .. } => {
                *peer = Some(answer.peer);
                *resume = key.clone();
            }
            Role::Idle => {}
        }
        self.sent_vp8(answer.codec == VideoCodec::Vp8);
        let mut replies = vec![ServerMessage::Answer {
            sdp: answer.sdp,
            resume: key,
        }];
        // The answer already carries our candidates; trickling them too helps clients that
        // only look at candidate messages.
        replies.extend(
            answer
                .candidates
                .into_iter()
                .map(|candidate| ServerMessage::Candidate {
                    candidate,
                    sdp_mid: None,
                    sdp_mline_index: Some(0),
                }),
        );
        Ok(replies)
    }

    /// Stop watching: let go of the viewer's peer (see [`Self::let_go_of_peer`]) and leave
    /// its camera, unless that camera is `keep` (subscribing again to the same camera keeps
    /// the subscription).
    pub(super) async fn release_viewer(&mut self, keep: Option<&str>, lost: bool) {
        self.let_go_of_peer(lost).await;
        if let Role::Viewer { camera_id, .. } = &self.role {
            let publisher = self.registry().end_direct(self.id, camera_id);
            if let Some(publisher) = publisher {
                // Gone or behind: its direct connection to us fails by itself.
                let _ = self
                    .state
                    .deliver(publisher, ServerMessage::DirectClose { viewer: self.id });
            }
            if keep != Some(camera_id.as_str()) {
                // Its VP8 mark goes with the subscription: one `demand` says both.
                let camera_id = camera_id.clone();
                self.registry().unsubscribe(self.id, &camera_id);
                self.viewers_changed(&camera_id);
            } else {
                self.sent_vp8(false);
            }
        }
        self.role = Role::Idle;
    }

    /// The resume table, locked for one call.
    fn resumes(&self) -> std::sync::MutexGuard<'_, Resumes> {
        self.state.resumes.lock().unwrap()
    }

    /// Let go of this session's SFU peer: close it if the resume table says it is still
    /// ours. When the socket was `lost`, a viewer's peer is left open for
    /// [`RESUME_GRACE`] instead, for its page to resume from a new socket, and closed then
    /// if nobody did.
    pub(super) async fn let_go_of_peer(&mut self, lost: bool) {
        let (Some(peer), key) = self.role.take_peer() else {
            return;
        };
        let ours = match key {
            None => true,
            Some(key) if lost => {
                if self.resumes().orphan(&key, self.id) {
                    tracing::info!(session = self.id, %peer, "socket lost; media connection kept for a resume");
                    let state = self.state.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(RESUME_GRACE).await;
                        let expired = state.resumes.lock().unwrap().expire(&key);
                        if let Some(peer) = expired {
                            tracing::info!(%peer, "nobody resumed the media connection; closing it");
                            state.sfu.close_peer(peer).await;
                        }
                    });
                }
                false
            }
            Some(key) => self.resumes().forget(&key, self.id),
        };
        if ours {
            self.state.sfu.close_peer(peer).await;
        }
    }

    /// ICE restart on this viewer's own media connection (its network changed, the socket
    /// survived).
    pub(super) async fn restart_ice(&mut self, sdp: &str) -> Result<Vec<ServerMessage>, WireError> {
        let Role::Viewer {
            peer: Some(peer),
            direct: false,
            resume,
            ..
        } = &self.role
        else {
            return Err(wrong_state(
                "an ICE restart needs a media connection through the server: subscribe and send an offer",
            ));
        };
        let (peer, resume) = (*peer, resume.clone());
        let answer = self
            .state
            .sfu
            .restart_ice(peer, sdp)
            .await
            .map_err(sfu_error)?;
        tracing::info!(session = self.id, %peer, "ICE restart answered");
        Ok(vec![ServerMessage::Answer {
            sdp: answer.sdp,
            resume,
        }])
    }

    /// A new session takes over the media connection an earlier one (its socket lost) held
    /// under `key`, and restarts its ICE.
    pub(super) async fn resume(
        &mut self,
        key: &str,
        sdp: &str,
    ) -> Result<Vec<ServerMessage>, WireError> {
        if self.role != Role::Idle {
            return Err(wrong_state(
                "resume a media connection first thing on a new connection, before subscribe or register",
            ));
        }
        let expired = || {
            wrong_state(
                "nothing to resume under this key (it expired or was used); subscribe again",
            )
        };
        let held = self.resumes().peek(key).cloned().ok_or_else(expired)?;
        self.grant
            .check(Needs::View, &held.camera_id, SystemTime::now())?;
        if self.grant.viewer_access() != held.access {
            return Err(wrong_state(
                "this connection's token grants other rights than the one being resumed; subscribe again",
            ));
        }
        let camera = self.registry().subscribe(self.id, &held.camera_id)?;
        let Some((held, orphaned)) = self.resumes().take(key) else {
            self.registry().unsubscribe(self.id, &held.camera_id);
            return Err(expired());
        };
        if !orphaned {
            let _ = self.state.evictions.send((held.owner, Eviction::Resumed));
        }
        let camera_id = held.camera_id.clone();
        self.role = Role::Viewer {
            camera_id: camera_id.clone(),
            peer: Some(held.peer),
            access: held.access,
            direct: false,
            resume: None,
        };
        self.viewers_changed(&camera_id);
        let answer = match self.state.sfu.restart_ice(held.peer, sdp).await {
            Ok(answer) => answer,
            Err(e) => {
                // Ours now, and of no use: close it, and let the page subscribe afresh.
                self.release_viewer(None, false).await;
                return Err(sfu_error(e));
            }
        };
        let key = self.resumes().issue(Resumable {
            owner: self.id,
            ..held
        });
        if let Role::Viewer { resume, .. } = &mut self.role {
            *resume = Some(key.clone());
        }
        self.sent_vp8(answer.codec == VideoCodec::Vp8);
        tracing::info!(session = self.id, camera = %camera_id, peer = %answer.peer, "media connection resumed");
        Ok(vec![
            ServerMessage::Subscribed {
                camera,
                path: MediaPath::Server,
                note: None,
            },
            ServerMessage::Answer {
                sdp: answer.sdp,
                resume: Some(key),
            },
        ])
    }
}
