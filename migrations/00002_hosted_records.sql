-- SPF (netblocks, enabled senders, pinned includes), DKIM keys and BIMI for
-- hosted domains, the sender catalog, and the edge contract columns that
-- carry them to dnsedge.

-- +goose Up
CREATE TABLE domain_netblocks (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    domain_id  uuid NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    cidr       cidr NOT NULL,
    label      text NOT NULL DEFAULT '' CHECK (length(label) <= 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (domain_id, cidr)
);

-- The sender catalog: known sending services. Rows come from the catalog
-- data file shipped with Rampart (source = 'catalog'); ranges are refreshed
-- by a periodic job that resolves each service's SPF include.
CREATE TABLE sender_services (
    slug               text PRIMARY KEY CHECK (slug ~ '^[a-z0-9][a-z0-9-]*$'),
    name               text NOT NULL,
    category           text NOT NULL DEFAULT '',
    spf_include        text NOT NULL DEFAULT '',
    helo_suffixes      text[] NOT NULL DEFAULT '{}',
    dkim_domains       text[] NOT NULL DEFAULT '{}',
    static_ranges      cidr[] NOT NULL DEFAULT '{}',
    -- The ranges the include resolved to last, and the DNS-querying terms
    -- evaluating it costs (the include itself and everything below it).
    resolved_ranges    cidr[] NOT NULL DEFAULT '{}',
    spf_lookups        integer NOT NULL DEFAULT 1 CHECK (spf_lookups >= 0),
    resolved_at        timestamptz,
    resolve_error      text NOT NULL DEFAULT '',
    setup_url          text NOT NULL DEFAULT '',
    source_url         text NOT NULL DEFAULT '',
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE domain_senders (
    domain_id  uuid NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    service    text NOT NULL REFERENCES sender_services (slug) ON DELETE RESTRICT,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (domain_id, service)
);
CREATE INDEX domain_senders_service_idx ON domain_senders (service);

-- Literal includes kept in the domain's _nspf record until they expire, for
-- vendors whose set-up checkers look for their include in the text.
CREATE TABLE spf_pins (
    domain_id  uuid NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    include    text NOT NULL,
    lookups    integer NOT NULL DEFAULT 1 CHECK (lookups >= 1),
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (domain_id, include)
);

CREATE TABLE dkim_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    domain_id    uuid NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    selector     text NOT NULL CHECK (selector = lower(selector)),
    -- Either a hosted public key (key_type, public_key) or a vendor-rotated
    -- key published as a CNAME (cname_target).
    key_type     text CHECK (key_type IN ('rsa', 'ed25519')),
    key_bits     integer,
    public_key   text,
    -- The whole TXT record served for a hosted key, with any h=, s=, t=
    -- and n= tags the owner gave.
    record       text,
    cname_target text,
    service      text REFERENCES sender_services (slug) ON DELETE SET NULL,
    revoked_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (domain_id, selector),
    CHECK ((public_key IS NOT NULL AND key_type IS NOT NULL AND record IS NOT NULL AND cname_target IS NULL)
        OR (public_key IS NULL AND key_type IS NULL AND record IS NULL AND cname_target IS NOT NULL))
);

ALTER TABLE domains
    ADD COLUMN bimi_logo_url     text,
    ADD COLUMN bimi_evidence_url text;

-- Edge contract: what dnsedge needs for SPF, DKIM and BIMI answers.
ALTER TABLE edge_domain
    -- The domain's own netblocks, answered as ip4:/ip6: of the querying IP.
    ADD COLUMN netblocks cidr[] NOT NULL DEFAULT '{}',
    -- Enabled senders, by edge_service name.
    ADD COLUMN services text[] NOT NULL DEFAULT '{}',
    -- The TXT value at <name>._nspf.<edge zone> (netblocks and pinned includes).
    ADD COLUMN nspf text NOT NULL DEFAULT '',
    -- Records under _domainkey.<name>: [{"selector": "s1", "txt": "v=DKIM1; ..."}
    -- or {"selector": "s2", "cname": "s2.vendor.example"}].
    ADD COLUMN dkim jsonb NOT NULL DEFAULT '[]',
    -- The TXT value at default._bimi.<name>; '' while withheld (NODATA).
    ADD COLUMN bimi text NOT NULL DEFAULT '';

-- Sender services as the edge sees them. Rows share edge_serial_seq and the
-- rampart_edge NOTIFY channel with edge_domain.
CREATE TABLE edge_service (
    name          text PRIMARY KEY,
    serial        bigint NOT NULL,
    ranges        cidr[] NOT NULL DEFAULT '{}',
    helo_suffixes text[] NOT NULL DEFAULT '{}',
    include       text NOT NULL DEFAULT '',
    deleted       boolean NOT NULL DEFAULT false,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX edge_service_serial_idx ON edge_service (serial);

-- +goose Down
DROP TABLE edge_service;
ALTER TABLE edge_domain
    DROP COLUMN netblocks, DROP COLUMN services, DROP COLUMN nspf,
    DROP COLUMN dkim, DROP COLUMN bimi;
ALTER TABLE domains DROP COLUMN bimi_logo_url, DROP COLUMN bimi_evidence_url;
DROP TABLE dkim_keys;
DROP TABLE spf_pins;
DROP TABLE domain_senders;
DROP TABLE sender_services;
DROP TABLE domain_netblocks;
