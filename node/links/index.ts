/**
 * Links between peers: mutual TLS with a peer-link CA kept in the replicated store, each peer's
 * certificate naming its peer id (pki.ts), the credentials both ends of a link use (credentials.ts)
 * and the peer's identity that follows the store (identity.ts).
 */
export { LinkCredentials, memberCheck, type MemberCheck } from './credentials.ts';
export { LinkIdentity, type LinkIdentityInit } from './identity.ts';
export { generateLinkCa, issuePeerCert, parseKeyPair, PEER_ID, signedBy, type KeyPair } from './pki.ts';
