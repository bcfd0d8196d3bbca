package dev.isthmus.controller.registry;

import dev.isthmus.api.registry.Endpoint;
import dev.isthmus.api.registry.RegistrySnapshot;
import dev.isthmus.controller.config.ControllerConfig;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Event;
import java.time.Clock;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import org.jboss.logging.Logger;

/**
 * The cluster's local registry of workload instances registered by their sidecars. A registration
 * is kept while heartbeats (re-registrations) arrive; one silent for the registry TTL is removed.
 * Every change increases the generation and fires a {@link RegistryChanged} event.
 *
 * <p>One owner for the state: every method is synchronized; readers get immutable snapshots.
 */
@ApplicationScoped
public class WorkloadRegistry {

    private static final Logger LOG = Logger.getLogger(WorkloadRegistry.class);

    /** Fired after the local registry changed. */
    public record RegistryChanged(RegistrySnapshot snapshot) {
    }

    private record Registration(Endpoint endpoint, Instant lastSeen) {
    }

    private final ControllerConfig config;
    private final Event<RegistryChanged> changed;
    private final Clock clock = Clock.systemUTC();
    private final Map<String, Registration> registrations = new LinkedHashMap<>();
    /** Starts at the boot time in ms, so generations keep increasing across restarts. */
    private final AtomicLong generation = new AtomicLong(System.currentTimeMillis());
    private RegistrySnapshot snapshot;

    public WorkloadRegistry(ControllerConfig config, Event<RegistryChanged> changed) {
        this.config = config;
        this.changed = changed;
        this.snapshot = RegistrySnapshot.of(config.cluster().name(), generation.get(), List.of());
    }

    /** Registers or refreshes an instance; returns true if its endpoint is new or changed. */
    public boolean register(Endpoint endpoint) {
        RegistrySnapshot fire = null;
        synchronized (this) {
            var old = registrations.put(endpoint.instance(), new Registration(endpoint, clock.instant()));
            if (old == null || !old.endpoint().equals(endpoint)) {
                LOG.infof("event=workload_registered cluster=%s service=%s instance=%s address=%s:%d", endpoint.cluster(),
                        endpoint.service(), endpoint.instance(), endpoint.address(), endpoint.port());
                fire = rebuild();
            }
        }
        if (fire != null) {
            changed.fire(new RegistryChanged(fire));
            return true;
        }
        return false;
    }

    /** Removes an instance; false if it was not registered. */
    public boolean deregister(String instance) {
        RegistrySnapshot fire;
        synchronized (this) {
            if (registrations.remove(instance) == null) {
                return false;
            }
            LOG.infof("event=workload_deregistered cluster=%s instance=%s", config.cluster().name(), instance);
            fire = rebuild();
        }
        changed.fire(new RegistryChanged(fire));
        return true;
    }

    /** Removes instances whose heartbeats stopped for longer than the TTL. */
    public void expire() {
        RegistrySnapshot fire = null;
        synchronized (this) {
            Instant deadline = clock.instant().minus(config.registry().ttl());
            var expired = new ArrayList<String>();
            registrations.forEach((id, r) -> {
                if (r.lastSeen().isBefore(deadline)) {
                    expired.add(id);
                }
            });
            if (!expired.isEmpty()) {
                expired.forEach(registrations::remove);
                LOG.infof("event=workload_expired cluster=%s instances=%s ttl=%s", config.cluster().name(), expired, config.registry().ttl());
                fire = rebuild();
            }
        }
        if (fire != null) {
            changed.fire(new RegistryChanged(fire));
        }
    }

    public synchronized RegistrySnapshot snapshot() {
        return snapshot;
    }

    private RegistrySnapshot rebuild() {
        snapshot = RegistrySnapshot.of(config.cluster().name(), generation.incrementAndGet(),
                registrations.values().stream().map(Registration::endpoint).toList());
        return snapshot;
    }
}
