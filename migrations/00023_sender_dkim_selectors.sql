-- The DKIM selectors a sending service signs with when it signs as the
-- customer's own domain (the catalog's dkim_selectors): an aligned DKIM
-- pass with one of them classifies the source as that service.

-- +goose Up
ALTER TABLE sender_services ADD COLUMN dkim_selectors text[] NOT NULL DEFAULT '{}';
DROP TRIGGER sender_services_classify_update ON sender_services;
CREATE TRIGGER sender_services_classify_update AFTER UPDATE ON sender_services
    FOR EACH ROW WHEN ((OLD.resolved_ranges, OLD.static_ranges, OLD.dkim_domains, OLD.helo_suffixes, OLD.dkim_selectors)
                       IS DISTINCT FROM (NEW.resolved_ranges, NEW.static_ranges, NEW.dkim_domains, NEW.helo_suffixes, NEW.dkim_selectors))
    EXECUTE FUNCTION classify_queue_all_domains();

-- +goose Down
DROP TRIGGER sender_services_classify_update ON sender_services;
CREATE TRIGGER sender_services_classify_update AFTER UPDATE ON sender_services
    FOR EACH ROW WHEN ((OLD.resolved_ranges, OLD.static_ranges, OLD.dkim_domains, OLD.helo_suffixes)
                       IS DISTINCT FROM (NEW.resolved_ranges, NEW.static_ranges, NEW.dkim_domains, NEW.helo_suffixes))
    EXECUTE FUNCTION classify_queue_all_domains();
ALTER TABLE sender_services DROP COLUMN dkim_selectors;
