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
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicLong;
import org.jboss.logging.Logger;

/**
 * The cluster's local registry, merged from its sources: workload instances registered by their
 * sidecars (kept while heartbeats arrive; one silent for the registry TTL is removed), and whole
 * sets replaced at once by the other sources ({@code kubernetes}, {@code static}). When two sources
 * name the same instance, a registration wins over Kubernetes, which wins over the static file.
 * Every change of content increases the generation and fires a {@link RegistryChanged} event with
 * the snapshots before and after; a source that re-sends what it sent before changes nothing.
 *
 * <p>One owner for the state: every method is synchronized; readers get immutable snapshots.
 */
@ApplicationScoped
public class LocalRegistry {

    private static final Logger LOG = Logger.getLogger(LocalRegistry.class);
    /** Sources other than registration, by precedence (first wins). */
    private static final List<String> SOURCES = List.of("kubernetes", "static");

    /** Fired after the local registry changed. */
    public record RegistryChanged(RegistrySnapshot previous, RegistrySnapshot snapshot, long changedAtMillis) {
    }

    private record Registration(Endpoint endpoint, Instant lastSeen) {
    }

    private final ControllerConfig config;
    private final Event<RegistryChanged> changed;
    private final Clock clock = Clock.systemUTC();
    private final Map<String, Registration> registrations = new LinkedHashMap<>();
    private final Map<String, List<Endpoint>> sources = new TreeMap<>();
    /** Starts at the boot time in ms, so generations keep increasing across restarts. */
    private final AtomicLong generation = new AtomicLong(System.currentTimeMillis());
    private RegistrySnapshot snapshot;

    public LocalRegistry(ControllerConfig config, Event<RegistryChanged> changed) {
        this.config = config;
        this.changed = changed;
        this.snapshot = RegistrySnapshot.of(config.cluster().name(), generation.get(), List.of());
    }

    /** Registers or refreshes an instance; returns true if its endpoint is new or changed. */
    public boolean register(Endpoint endpoint) {
        RegistryChanged fire = null;
        synchronized (this) {
            var old = registrations.put(endpoint.instance(), new Registration(endpoint, clock.instant()));
            if (old == null || !old.endpoint().equals(endpoint)) {
                LOG.infof("event=workload_registered cluster=%s service=%s instance=%s address=%s:%d", endpoint.cluster(),
                        endpoint.service(), endpoint.instance(), endpoint.address(), endpoint.port());
                fire = rebuild();
            }
        }
        fire(fire);
        return fire != null;
    }

    /** Removes an instance; false if it was not registered. */
    public boolean deregister(String instance) {
        RegistryChanged fire;
        synchronized (this) {
            if (registrations.remove(instance) == null) {
                return false;
            }
            LOG.infof("event=workload_deregistered cluster=%s instance=%s", config.cluster().name(), instance);
            fire = rebuild();
        }
        fire(fire);
        return true;
    }

    /** Removes instances whose heartbeats stopped for longer than the TTL. */
    public void expire() {
        RegistryChanged fire = null;
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
        fire(fire);
    }

    /** Replaces everything one source ({@code kubernetes} or {@code static}) contributes; true if the registry changed. */
    public boolean replaceSource(String source, List<Endpoint> endpoints) {
        if (!SOURCES.contains(source)) {
            throw new IllegalArgumentException("unknown registry source '" + source + "'; known: " + SOURCES);
        }
        RegistryChanged fire;
        synchronized (this) {
            sources.put(source, List.copyOf(endpoints));
            fire = rebuild();
        }
        fire(fire);
        return fire != null;
    }

    public synchronized RegistrySnapshot snapshot() {
        return snapshot;
    }

    private void fire(RegistryChanged event) {
        if (event != null) {
            changed.fire(event);
        }
    }

    /** Merges the sources; returns the change, or null if the content is what it was. */
    private RegistryChanged rebuild() {
        var merged = new LinkedHashMap<String, Endpoint>();
        registrations.values().forEach(r -> merged.put(r.endpoint().instance(), r.endpoint()));
        for (String source : SOURCES) {
            for (Endpoint e : sources.getOrDefault(source, List.of())) {
                Endpoint held = merged.putIfAbsent(e.instance(), e);
                if (held != null && !held.equals(e)) {
                    LOG.debugf("event=registry_instance_shadowed instance=%s source=%s", e.instance(), source);
                }
            }
        }
        var candidate = RegistrySnapshot.of(config.cluster().name(), generation.get() + 1, List.copyOf(merged.values()));
        if (candidate.hash().equals(snapshot.hash())) {
            return null;
        }
        generation.incrementAndGet();
        var previous = snapshot;
        snapshot = candidate;
        return new RegistryChanged(previous, candidate, clock.millis());
    }
}
