package dev.isthmus.controller.policy;

import dev.isthmus.controller.config.ControllerConfig;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.eclipse.jgit.api.Git;
import org.eclipse.jgit.lib.ObjectId;
import org.eclipse.jgit.lib.Repository;
import org.eclipse.jgit.revwalk.RevCommit;
import org.eclipse.jgit.revwalk.RevWalk;
import org.eclipse.jgit.transport.RefSpec;
import org.eclipse.jgit.treewalk.TreeWalk;
import org.eclipse.jgit.treewalk.filter.PathFilter;
import org.jboss.logging.Logger;

/**
 * Watches the policy repository ({@code isthmus.policy.git.*}): a bare mirror of the branch is kept
 * in {@code <state-dir>/policy/repo.git} and fetched every poll interval and on each authenticated
 * webhook call. A new head commit's YAML files under the path are read straight from the commit's
 * tree, validated and, if valid, applied here and published to the federation ({@link PolicyStore}).
 * The bundle in force is published again at every poll, so a member that joined later gets it.
 * Git unreachable: the policy in force stays and {@link #status} says since when it is unreachable.
 */
@ApplicationScoped
public class GitPolicySource {

    private static final Logger LOG = Logger.getLogger(GitPolicySource.class);

    /** What the watch knows: the repository, the last fetch, and whether Git answered. */
    public record Status(String url, String branch, String path, String headSha, Instant lastFetch, boolean reachable, String error,
            Instant unreachableSince) {
    }

    private final ControllerConfig config;
    private final PolicyStore store;
    private final ScheduledExecutorService worker = Executors.newSingleThreadScheduledExecutor(
            r -> Thread.ofPlatform().daemon().name("policy-git").unstarted(r));
    private volatile Status status;
    private String processed = "";

    public GitPolicySource(ControllerConfig config, PolicyStore store) {
        this.config = config;
        this.store = store;
    }

    void start(@Observes StartupEvent event) {
        var git = config.policy().git();
        if (git.url().isEmpty()) {
            return;
        }
        status = new Status(git.url().get(), git.branch(), git.path().orElse(""), "", null, false, "not fetched yet", null);
        long every = Math.max(100, git.pollInterval().toMillis());
        worker.scheduleWithFixedDelay(this::syncQuietly, 0, every, TimeUnit.MILLISECONDS);
        LOG.infof("event=policy_watch_started url=%s branch=%s path=%s poll=%s", git.url().get(), git.branch(), git.path().orElse(""), git.pollInterval());
    }

    void stop(@Observes ShutdownEvent event) {
        worker.shutdownNow();
    }

    /** Whether a repository is watched here. */
    public boolean enabled() {
        return status != null;
    }

    public Status status() {
        return status;
    }

    /** Fetches now (a push event), without waiting for the poll. */
    public void trigger() {
        if (enabled()) {
            worker.execute(this::syncQuietly);
        }
    }

    private void syncQuietly() {
        try {
            sync();
        } catch (RuntimeException e) {
            LOG.errorf(e, "event=policy_sync_failed");
        }
    }

    private Path mirror() {
        return config.stateDir().resolve("policy").resolve("repo.git");
    }

    synchronized void sync() {
        var git = config.policy().git();
        String url = git.url().orElseThrow();
        String ref = "refs/heads/" + git.branch();
        Instant now = Instant.now();
        try {
            Path dir = mirror();
            if (!Files.exists(dir.resolve("HEAD"))) {
                Files.createDirectories(dir);
                Git.init().setBare(true).setDirectory(dir.toFile()).call().close();
            }
            try (Git repo = Git.open(dir.toFile())) {
                repo.fetch().setRemote(url).setRefSpecs(new RefSpec("+" + ref + ":" + ref)).setTimeout(10).call();
                ObjectId head = repo.getRepository().resolve(ref);
                if (head == null) {
                    throw new IOException("branch '" + git.branch() + "' does not exist in " + url);
                }
                status = new Status(url, git.branch(), git.path().orElse(""), head.name(), now, true, "", null);
                if (!head.name().equals(processed)) {
                    processed = head.name();
                    var files = new TreeMap<String, String>();
                    long commitTime;
                    long reachableCommits;
                    try (RevWalk walk = new RevWalk(repo.getRepository())) {
                        RevCommit commit = walk.parseCommit(head);
                        commitTime = commit.getCommitTime();
                        readFiles(repo.getRepository(), commit, git.path().orElse(""), files);
                        reachableCommits = reachable(walk, commit);
                    }
                    LOG.infof("event=policy_commit sha=%s reachable_commits=%d files=%d", head.name(), reachableCommits, files.size());
                    store.offer(new PolicyStore.BundleMessage(head.name(), commitTime, reachableCommits, url, files), "git " + url, true);
                    return;
                }
            }
            // unchanged: publish the bundle in force again, for members that joined since
            store.republish();
        } catch (Exception e) {
            Status before = status;
            Instant since = before != null && !before.reachable() && before.unreachableSince() != null ? before.unreachableSince() : now;
            status = new Status(url, git.branch(), git.path().orElse(""), before == null ? "" : before.headSha(), before == null ? null : before.lastFetch(), false,
                    e.getMessage() == null ? e.toString() : e.getMessage(), since);
            if (before == null || before.reachable() || before.unreachableSince() == null) {
                LOG.warnf("event=policy_git_unreachable url=%s cause=\"%s\" (the policy in force stays: %s)", url, status.error(),
                        store.sha().isEmpty() ? "none" : store.sha());
            }
        }
    }

    /** How many commits are reachable from {@code commit}, itself included: more than from any of its ancestors. */
    static long reachable(RevWalk walk, RevCommit commit) throws IOException {
        walk.reset();
        walk.setRetainBody(false);
        walk.markStart(commit);
        long n = 0;
        while (walk.next() != null) {
            n++;
        }
        return n;
    }

    /** The YAML files under {@code path} in {@code commit}'s tree, by path relative to it. */
    static void readFiles(Repository repo, RevCommit commit, String path, Map<String, String> out) throws IOException {
        String base = path == null ? "" : path.replaceAll("^/+|/+$", "");
        try (TreeWalk tw = new TreeWalk(repo)) {
            tw.addTree(commit.getTree());
            tw.setRecursive(true);
            if (!base.isEmpty()) {
                tw.setFilter(PathFilter.create(base));
            }
            while (tw.next()) {
                String p = tw.getPathString();
                String rel = base.isEmpty() ? p : p.substring(base.length() + 1);
                String name = rel.substring(rel.lastIndexOf('/') + 1);
                boolean hidden = false;
                for (String part : rel.split("/")) {
                    hidden |= part.startsWith(".");
                }
                if (!hidden && (name.endsWith(".yaml") || name.endsWith(".yml"))) {
                    out.put(rel, new String(repo.open(tw.getObjectId(0)).getBytes(), StandardCharsets.UTF_8));
                }
            }
        }
    }
}
