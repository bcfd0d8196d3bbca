package dev.isthmus.controller.policy;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.isthmus.api.policy.Policies;
import dev.isthmus.api.policy.PolicyValidator;
import dev.isthmus.api.registry.Endpoint;
import dev.isthmus.controller.config.ControllerConfig;
import dev.isthmus.controller.federation.FederatedCatalog;
import dev.isthmus.controller.membership.FederationBus;
import dev.isthmus.controller.registry.LocalRegistry;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Instant;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;
import org.jboss.logging.Logger;

/**
 * The policy this cluster runs: the newest accepted bundle (by commit time, then SHA), wherever it
 * came from (this controller's Git watch, or another member over NATS). A bundle is a commit's policy
 * files; every receiver validates them again before applying, so a member never runs what it would
 * refuse. Kept on disk ({@code <state-dir>/policy/current.json}) and run again at start. A refused
 * commit changes nothing and is kept as the last rejection, with its errors.
 */
@ApplicationScoped
public class PolicyStore {

    private static final Logger LOG = Logger.getLogger(PolicyStore.class);

    /**
     * A commit's policy files as published: SHA, committer time (epoch seconds), the number of commits
     * reachable from it, itself included ({@code reachableCommits}), files by path.
     *
     * <p>Bundles are ordered by reachable commits, then commit time, then SHA. A commit has more reachable
     * commits than any of its ancestors, so on a branch the head always wins, and a member whose Git
     * fetch lags cannot bring back an older commit. Commit times alone do not order a branch: two
     * commits pushed within one second have the same (found by {@code bench/run policy-propagation}),
     * and a committer's clock may run behind its parent's. Rewriting the branch to a shorter history
     * (a force-push back) is therefore not applied: revert with a new commit, as GitOps expects.
     */
    public record BundleMessage(String sha, long commitTime, long reachableCommits, String source, Map<String, String> files) {
        public BundleMessage(String sha, long commitTime, String source, Map<String, String> files) {
            this(sha, commitTime, 0, source, files);
        }

        /** Whether this bundle comes after {@code other} (null: nothing in force). */
        boolean after(Applied other) {
            if (other == null) {
                return true;
            }
            if (reachableCommits != other.reachableCommits()) {
                return reachableCommits > other.reachableCommits();
            }
            if (commitTime != other.commitTime()) {
                return commitTime > other.commitTime();
            }
            return sha.compareTo(other.sha()) > 0;
        }
    }

    /** The bundle in force. */
    public record Applied(String sha, long commitTime, long reachableCommits, String source, Instant appliedAt, Policies.Bundle bundle,
            Map<String, String> files) {
    }

    /** The last commit refused here, with why. */
    public record Rejection(String sha, String source, Instant at, List<String> errors) {
    }

    private final ControllerConfig config;
    private final FederationBus bus;
    private final ObjectMapper json;
    private final LocalRegistry registry;
    private final FederatedCatalog catalog;
    private final MeterRegistry meters;
    private volatile Applied applied;
    private volatile Rejection lastRejection;
    private final AtomicLong version = new AtomicLong();
    private final List<Runnable> onApplied = new java.util.concurrent.CopyOnWriteArrayList<>();

    public PolicyStore(ControllerConfig config, FederationBus bus, ObjectMapper json, LocalRegistry registry, FederatedCatalog catalog,
            MeterRegistry meters) {
        this.config = config;
        this.bus = bus;
        this.json = json;
        this.registry = registry;
        this.catalog = catalog;
        this.meters = meters;
    }

    void start(@Observes StartupEvent event) {
        Path file = file();
        if (Files.exists(file)) {
            try {
                var kept = json.readValue(file.toFile(), BundleMessage.class);
                offer(kept, "disk", false);
            } catch (IOException e) {
                LOG.errorf("event=policy_not_restored file=%s cause=%s", file, e.getMessage());
            }
        }
        bus.on("policy", msg -> {
            BundleMessage m;
            try {
                m = json.readValue(msg.data(), BundleMessage.class);
            } catch (IOException e) {
                throw new IllegalArgumentException("policy bundle is not valid JSON: " + e.getMessage());
            }
            offer(m, "member " + msg.sender(), false);
        });
        meters.gauge("isthmus_policy_applied_commit_time_seconds", this, s -> s.applied == null ? 0 : s.applied.commitTime());
    }

    private Path file() {
        return config.stateDir().resolve("policy").resolve("current.json");
    }

    public Applied applied() {
        return applied;
    }

    public Rejection lastRejection() {
        return lastRejection;
    }

    /** Runs {@code action} (which must not block) each time another bundle is put in force. */
    public void onApplied(Runnable action) {
        onApplied.add(action);
    }

    /** Changes whenever the bundle in force changes (the xDS server watches it). */
    public long version() {
        return version.get();
    }

    /** The SHA in force, empty if none. */
    public String sha() {
        Applied a = applied;
        return a == null ? "" : a.sha();
    }

    /** Subsets the registry knows per service (for the validator's warnings). */
    Map<String, Set<String>> subsets() {
        var out = new HashMap<String, Set<String>>();
        var all = new java.util.ArrayList<Endpoint>(registry.snapshot().endpoints());
        for (var s : catalog.services(Map.of(), config.cluster().name())) {
            s.clusters().values().forEach(l -> l.forEach(c -> all.add(c.endpoint())));
        }
        for (Endpoint e : all) {
            String v = e.labels().get("version");
            if (v != null) {
                out.computeIfAbsent(e.service(), k -> new HashSet<>()).add(v);
            }
        }
        return out;
    }

    /**
     * Validates a commit's files and applies them if valid and newer than the bundle in force;
     * {@code publish}: send the accepted bundle to the federation.
     *
     * @return the validation result
     */
    public synchronized PolicyValidator.Result offer(BundleMessage m, String from, boolean publish) {
        var result = PolicyValidator.validate(m.files() == null ? Map.of() : m.files(), subsets());
        if (!result.ok()) {
            var errors = result.errors().stream().map(Object::toString).toList();
            lastRejection = new Rejection(m.sha(), from, Instant.now(), errors);
            meters.counter("isthmus_policy_rejected_total").increment();
            LOG.warnf("event=policy_rejected sha=%s from=%s errors=%d first=\"%s\" (the policy in force stays: %s)", m.sha(), from, errors.size(),
                    errors.isEmpty() ? "" : errors.get(0), sha().isEmpty() ? "none" : sha());
            return result;
        }
        result.problems().forEach(p -> LOG.infof("event=policy_warning sha=%s %s", m.sha(), p));
        Applied now = applied;
        boolean same = now != null && now.sha().equals(m.sha());
        boolean newer = !same && m.after(now);
        if (newer) {
            applied = new Applied(m.sha(), m.commitTime(), m.reachableCommits(), m.source(), Instant.now(), result.bundle(), Map.copyOf(m.files()));
            version.incrementAndGet();
            onApplied.forEach(Runnable::run);
            meters.counter("isthmus_policy_applied_total").increment();
            LOG.infof("event=policy_applied sha=%s commit_time=%d reachable_commits=%d from=%s resources=%d", m.sha(), m.commitTime(), m.reachableCommits(), from,
                    result.bundle().size());
            persist(m);
        }
        if (publish && (newer || same)) {
            publish(m);
        }
        return result;
    }

    /** Publishes the bundle in force again (for members that joined since), without validating it again. */
    public void republish() {
        Applied a = applied;
        if (a != null) {
            publish(new BundleMessage(a.sha(), a.commitTime(), a.reachableCommits(), a.source(), a.files()));
        }
    }

    private void publish(BundleMessage m) {
        try {
            bus.publish(bus.own("policy"), json.writeValueAsBytes(m));
        } catch (IOException e) {
            LOG.errorf("event=policy_not_published sha=%s cause=%s", m.sha(), e.getMessage());
        }
    }

    private void persist(BundleMessage m) {
        Path file = file();
        try {
            Files.createDirectories(file.getParent());
            Path tmp = file.resolveSibling("current.json.tmp");
            json.writeValue(tmp.toFile(), m);
            Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            LOG.errorf("event=policy_not_saved file=%s cause=%s", file, e.getMessage());
        }
    }
}
