/**
 * The development issuer's keys live in gateway/dev-keys.ts: the gateway's own authorization server
 * signs with them too, and the core does not import from plugins. Re-exported here for the plugin's
 * modules and the tests that always found them here.
 */
export * from '../../gateway/dev-keys.ts';
