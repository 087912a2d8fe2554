// Third-party TAK clients against a running Concord: @tak-ps/node-tak 8.3 (TLS, client certificates, XML stream)
// and @tak-ps/node-cot to build and read the events. Usage: node interop.mjs TAK_PORT CERT_DIR
import fs from 'node:fs';
import TAK from '@tak-ps/node-tak';
import CoT from '@tak-ps/node-cot';

const [port, dir] = process.argv.slice(2);
const url = new URL(`ssl://127.0.0.1:${port}`);
const results = [];
const check = (name, ok, detail = '') => {
    results.push(ok);
    console.log(`${ok ? 'ok' : 'not ok'} - ${name}${detail ? ` (${detail})` : ''}`);
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const auth = (user) => ({
    cert: fs.readFileSync(`${dir}/${user}.cert.pem`, 'utf8'),
    key: fs.readFileSync(`${dir}/${user}.key.pem`, 'utf8'),
});

async function device(id, user) {
    const state = { received: [], pongs: 0, errors: [] };
    const tak = await TAK.connect(id, url, auth(user));
    tak.on('cot', (cot) => state.received.push(cot));
    tak.on('ping', () => state.pongs++);
    tak.on('error', (err) => state.errors.push(err.message));
    state.tak = tak;
    return state;
}

function position(uid, callsign, lat, lon, offsetSeconds) {
    const time = new Date(Date.now() + offsetSeconds * 1000).toISOString();
    const stale = new Date(Date.now() + 120000).toISOString();
    return new CoT(`<event version="2.0" uid="${uid}" type="a-f-G-U-C" time="${time}" start="${time}" stale="${stale}" how="m-g">`
        + `<point lat="${lat}" lon="${lon}" hae="9999999.0" ce="9999999.0" le="9999999.0"/>`
        + `<detail><contact callsign="${callsign}" endpoint="*:-1:stcp"/><__group name="Cyan" role="Team Member"/>`
        + `<takv device="node-tak" platform="interop" os="node" version="8.3"/><track course="45" speed="3"/></detail></event>`);
}

const uid = `ANDROID-interop-${Date.now()}`;
const bob = await device('bob', 'force.g2');         // FORCE, military: may see RWABATT field data (agreement)
const carol = await device('carol', 'ocha.cmcoord'); // OCHA, humanitarian: may not
await sleep(1500);
const alice = await device('alice', 'rwabatt.patrol');
await sleep(1500);

for (let i = 0; i < 3; i++) {
    await alice.tak.write([position(uid, 'RWABATT 2-1', 5.76 + i * 0.001, 20.67 + i * 0.001, i)]);
    await sleep(200);
}
await sleep(3000);

const seenByBob = bob.received.filter((c) => c.raw.event._attributes.uid === uid);
const seenByCarol = carol.received.filter((c) => c.raw.event._attributes.uid === uid);
check('the third-party client connects over TLS with a certificate from concord cert issue', alice.errors.length === 0 && bob.errors.length === 0, [...alice.errors, ...bob.errors].join('; '));
check('a ping from node-tak is answered with a pong', alice.pongs > 0 && bob.pongs > 0, `pongs ${alice.pongs}/${bob.pongs}`);
check('a member who may see the positions receives all three', seenByBob.length === 3, `received ${seenByBob.length}`);
check('the positions arrive in order with their coordinates',
    seenByBob.length === 3 && seenByBob.map((c) => Number(c.raw.event.point._attributes.lat)).every((lat, i) => Math.abs(lat - (5.76 + i * 0.001)) < 1e-9));
check('the marking travels in the access attribute',
    seenByBob.length > 0 && String(seenByBob[0].raw.event._attributes.access).includes('REL TO KIND:MILITARY'), String(seenByBob[0]?.raw.event._attributes.access));
check('a member without the releasability receives nothing', seenByCarol.length === 0, `received ${seenByCarol.length}`);
check('the sender does not get its own positions back', alice.received.filter((c) => c.raw.event._attributes.uid === uid).length === 0);

// A GeoChat read receipt, as ATAK writes one (<__chatreceipt>, the message's sender named in <marti>), from Alice's device
// to Bob's: it goes to Bob's device only.
const bobUid = `ANDROID-interop-bob-${Date.now()}`;
await bob.tak.write([position(bobUid, 'FORCE G2', 5.7, 20.6, 0)]);
await sleep(1000);
const messageId = `${Date.now().toString(16)}-receipt`;
const now = new Date().toISOString();
const later = new Date(Date.now() + 60000).toISOString();
await alice.tak.write([new CoT(`<event version="2.0" uid="${messageId}" type="b-t-f-r" time="${now}" start="${now}" stale="${later}" how="h-g-i-g-o">`
    + '<point lat="0.0" lon="0.0" hae="9999999.0" ce="9999999.0" le="9999999.0"/><detail>'
    + `<__chatreceipt parent="RootContactGroup" groupOwner="false" messageId="${messageId}" chatroom="FORCE G2" id="${bobUid}" senderCallsign="RWABATT 2-1">`
    + `<chatgrp uid0="${uid}" uid1="${bobUid}" id="${bobUid}"/></__chatreceipt><link uid="${uid}" type="a-f-G-U-C" relation="p-p"/>`
    + `<marti><dest uid="${bobUid}"/></marti></detail></event>`)]);
await sleep(2000);
const receiptAt = (d) => d.received.filter((c) => c.raw.event._attributes.uid === messageId && c.raw.event._attributes.type === 'b-t-f-r').length;
check('a GeoChat read receipt reaches the device it names, and no other', receiptAt(bob) === 1 && receiptAt(carol) === 0, `bob ${receiptAt(bob)}, carol ${receiptAt(carol)}`);

// A hostile marker Alice's device places (it becomes a report too), then Bob's device switched off and on again: the
// marker comes in its opening picture; Carol's device, switched on again, may not see it and is not sent it.
const markerUid = `interop-marker-${Date.now()}`;
const placed = new Date().toISOString();
await alice.tak.write([new CoT(`<event version="2.0" uid="${markerUid}" type="a-h-G" time="${placed}" start="${placed}" stale="${new Date(Date.now() + 3600000).toISOString()}" how="h-g-i-g-o">`
    + '<point lat="5.75" lon="20.66" hae="9999999.0" ce="9999999.0" le="9999999.0"/>'
    + `<detail><contact callsign="Roadblock"/><remarks>Armed men at a roadblock</remarks><link uid="${uid}" type="a-f-G-U-C" relation="p-p"/></detail></event>`)]);
await sleep(1500);
for (const d of [bob, carol]) d.tak.destroy();
await sleep(500);
const bobAgain = await device('bob-again', 'force.g2');
const carolAgain = await device('carol-again', 'ocha.cmcoord');
await sleep(3000);
const markerAt = (d) => d.received.filter((c) => c.raw.event._attributes.uid === markerUid);
check('a device switched on after a marker was placed is sent it as placed, and one that may not see it is not',
    markerAt(bobAgain).length === 1 && markerAt(bobAgain)[0].raw.event.detail.remarks?._text === 'Armed men at a roadblock' && markerAt(carolAgain).length === 0,
    `bob ${markerAt(bobAgain).length}, carol ${markerAt(carolAgain).length}`);

for (const d of [alice, bobAgain, carolAgain]) d.tak.destroy();
const passed = results.filter(Boolean).length;
console.log(`interop: ${passed} passed, ${results.length - passed} failed`);
process.exit(0);
