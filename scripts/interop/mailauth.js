// SPF, DKIM, DMARC and BIMI with mailauth, as a receiver runs it, asking the
// lab's resolver. Run with NODE_PATH pointing at the installed node_modules.
//
// stdin: {"resolver": "127.0.0.1:53", "cases": [{"id", "ip", "helo", "sender"}],
//         "messages": [{"id", "file", "ip", "helo", "sender"}]}
// stdout: one JSON object per case or message: {"id", "result", "detail"};
// a message gives "dkim=<result> dmarc=<result> bimi=<result>".
'use strict';

const fs = require('fs');
const dns = require('dns');
const { spf } = require('mailauth/lib/spf');
const { authenticate } = require('mailauth');

async function main() {
    const req = JSON.parse(fs.readFileSync(0, 'utf8'));
    const r = new dns.promises.Resolver({ timeout: 5000, tries: 2 });
    r.setServers([req.resolver]);
    const resolver = (name, type) => r.resolve(name, type);
    for (const c of req.cases || []) {
        let out;
        try {
            const res = await spf({ sender: c.sender, ip: c.ip, helo: c.helo, mta: 'mx.receiver.example', resolver });
            out = { id: c.id, result: res.status.result, detail: res.status.comment || '' };
        } catch (e) {
            out = { id: c.id, result: 'exception', detail: String(e && e.message) };
        }
        process.stdout.write(JSON.stringify(out) + '\n');
    }
    for (const m of req.messages || []) {
        let out;
        try {
            const res = await authenticate(fs.readFileSync(m.file), {
                ip: m.ip, helo: m.helo, sender: m.sender, mta: 'mx.receiver.example', resolver
            });
            const dkim = (res.dkim.results || []).map(x => x.status.result).join(',') || 'none';
            const dmarc = res.dmarc ? res.dmarc.status.result : 'none';
            const bimi = res.bimi ? res.bimi.status.result : 'none';
            const why = [];
            for (const x of res.dkim.results || []) {
                if (x.status.comment) why.push('dkim: ' + x.status.comment);
            }
            if (res.bimi && res.bimi.status.comment) why.push('bimi: ' + res.bimi.status.comment);
            if (process.env.INTEROP_DEBUG) process.stderr.write(JSON.stringify({ bimi: res.bimi, dmarc: res.dmarc }) + '\n');
            out = { id: m.id, result: `dkim=${dkim} dmarc=${dmarc} bimi=${bimi}`, detail: why.join('; ') };
        } catch (e) {
            out = { id: m.id, result: 'exception', detail: String(e && e.message) };
        }
        process.stdout.write(JSON.stringify(out) + '\n');
    }
}

main().catch(e => {
    process.stderr.write(String(e && e.stack) + '\n');
    process.exit(1);
});
