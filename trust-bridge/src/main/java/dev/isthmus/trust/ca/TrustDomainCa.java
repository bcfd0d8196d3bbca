package dev.isthmus.trust.ca;

import dev.isthmus.trust.TrustBridgeConfig;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.util.Optional;
import org.jboss.logging.Logger;

/** The CA of this cluster's trust domain, made ready at start. */
@ApplicationScoped
public class TrustDomainCa {

    private static final Logger LOG = Logger.getLogger(TrustDomainCa.class);

    private final TrustBridgeConfig config;
    private volatile EmbeddedRoot root;

    public TrustDomainCa(TrustBridgeConfig config) {
        this.config = config;
    }

    void start(@Observes StartupEvent event) throws Exception {
        if (!"embedded".equals(config.ca().backend())) {
            throw new IllegalStateException("isthmus.ca.backend=" + config.ca().backend()
                    + " is not available in this build; use 'embedded'");
        }
        root = EmbeddedRoot.loadOrCreate(config.ca().dir(), trustDomain(), config.ca().rootTtl());
        LOG.infof("event=ca_ready trust_domain=%s backend=embedded root_expires=%s dir=%s", trustDomain(),
                root.certificate().getNotAfter().toInstant(), config.ca().dir());
    }

    public String trustDomain() {
        return config.cluster().trustDomain().orElse(config.cluster().name() + "." + config.federation() + ".isthmus");
    }

    public Optional<EmbeddedRoot> root() {
        return Optional.ofNullable(root);
    }
}
