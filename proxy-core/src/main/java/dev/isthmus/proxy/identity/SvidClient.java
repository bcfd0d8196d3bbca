package dev.isthmus.proxy.identity;

import dev.isthmus.lite.trust.v1.IssueRequest;
import dev.isthmus.lite.trust.v1.IssueResponse;
import dev.isthmus.proxy.grpc.GrpcClient;
import dev.isthmus.proxy.grpc.GrpcException;
import dev.isthmus.proxy.grpc.GrpcStatus;
import java.io.ByteArrayInputStream;
import java.nio.charset.StandardCharsets;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Keeps a proxy's workload certificate (X.509 SVID) current: makes an ECDSA P-256 key locally (the
 * key never leaves the process), sends a CSR with the bootstrap credential to the trust bridge's
 * WorkloadCertificates service, and renews at half the certificate's life (with up to 10% jitter).
 * A failed request is retried with exponential backoff (1 s doubling to 60 s, with jitter); the
 * current certificate stays in use until a new one arrives, so a bridge that is away costs nothing
 * until the certificate expires. The trust bundle is watched between renewals. Listeners hear of
 * every new certificate and every new set of trust roots.
 */
public final class SvidClient implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(SvidClient.class);

    /**
     * A certificate with its key, issuing chain and the federated trust bundle: the roots of each
     * trust domain, this one's included.
     */
    public record Svid(String spiffeId, PrivateKey key, X509Certificate certificate, List<X509Certificate> chain,
            Map<String, List<X509Certificate>> bundle, Instant notAfter) {

        public Svid {
            bundle = Map.copyOf(bundle);
            chain = List.copyOf(chain);
        }

        /** Every root of every trust domain in the bundle. */
        public List<X509Certificate> trustRoots() {
            return bundle.entrySet().stream().sorted(Map.Entry.comparingByKey()).flatMap(e -> e.getValue().stream()).toList();
        }

        /** The roots trusted for {@code trustDomain}; empty when the bundle has none for it. */
        public List<X509Certificate> roots(String trustDomain) {
            return bundle.getOrDefault(trustDomain, List.of());
        }
    }

    private final String spiffeId;
    private final java.util.function.Supplier<String> credential;
    /** The trust bridge's methods, as mesh-api's {@code trust.proto} names them ({@code HonouredProtosTest} checks them). */
    public static final String ISSUE = "isthmus.trust.v1.WorkloadCertificates/Issue";
    public static final String WATCH_BUNDLE = "isthmus.trust.v1.WorkloadCertificates/WatchBundle";

    private final GrpcClient client;
    private final Duration ttl;
    private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(
            r -> Thread.ofPlatform().daemon().name("svid-client").unstarted(r));
    private final AtomicReference<Svid> current = new AtomicReference<>();
    private final AtomicReference<String> lastError = new AtomicReference<>("");
    private final List<Consumer<Svid>> listeners = new CopyOnWriteArrayList<>();
    private volatile int failures;

    /**
     * @param bridge host:port of the trust bridge's gRPC port
     * @param ttl lifetime to ask for; zero for the bridge's default
     */
    public SvidClient(String bridge, String spiffeId, String credential, Duration ttl) {
        this(bridge, spiffeId, () -> credential, ttl);
    }

    /**
     * With a credential that changes: it is asked for at every request and every bundle watch, so a
     * credential that is replaced in place (a Kubernetes projected service-account token, which the
     * kubelet rewrites before it expires) is the one sent.
     *
     * @param bridge host:port of the trust bridge's gRPC port
     * @param ttl lifetime to ask for; zero for the bridge's default
     */
    public SvidClient(String bridge, String spiffeId, java.util.function.Supplier<String> credential, Duration ttl) {
        this.spiffeId = spiffeId;
        this.credential = credential;
        this.ttl = ttl;
        this.client = new GrpcClient(bridge);
    }

    /** Starts fetching now; returns at once. */
    public void start() {
        timer.execute(this::renew);
    }

    public void onRotation(Consumer<Svid> listener) {
        listeners.add(listener);
    }

    public Optional<Svid> current() {
        return Optional.ofNullable(current.get());
    }

    /** The last failure's status and message, empty after a success. */
    public String lastError() {
        return lastError.get();
    }

    private void renew() {
        try {
            Svid svid = fetch();
            current.set(svid);
            failures = 0;
            lastError.set("");
            log.info("event=svid_received spiffe_id={} serial={} not_after={}", spiffeId, svid.certificate().getSerialNumber().toString(16),
                    svid.notAfter());
            listeners.forEach(l -> l.accept(svid));
            watchBundle();
            // The life left counts from receipt, not from notBefore: CAs backdate notBefore (this
            // bridge by 60 s, Vault by 30 s by default), which would otherwise shift renewal.
            Instant received = Instant.now();
            long lifeMs = Math.max(1000, Duration.between(received, svid.notAfter()).toMillis());
            long halfLife = lifeMs / 2;
            long jitter = (long) (halfLife * 0.1 * ThreadLocalRandom.current().nextDouble());
            long delay = Math.max(500, halfLife - jitter);
            timer.schedule(this::renew, delay, TimeUnit.MILLISECONDS);
        } catch (GrpcException | IllegalStateException e) {
            failures++;
            String why = e.getMessage();
            lastError.set(why);
            long base = Math.min(60_000, 1000L << Math.min(failures - 1, 6));
            long delay = base + (long) (base * 0.2 * ThreadLocalRandom.current().nextDouble());
            log.warn("event=svid_request_failed spiffe_id={} attempt={} retry_in_ms={} cause=\"{}\" current_valid_until={}", spiffeId,
                    failures, delay, why, current().map(Svid::notAfter).map(Instant::toString).orElse("none"));
            timer.schedule(this::renew, delay, TimeUnit.MILLISECONDS);
        }
    }

    private volatile boolean watching;

    /**
     * Keeps the trust roots current between renewals: the bridge pushes the bundle on every change
     * (a root rotation distributes the new root before it signs anything). A broken watch is
     * reopened 5 s later.
     */
    private synchronized void watchBundle() {
        if (watching || timer.isShutdown()) {
            return;
        }
        watching = true;
        GrpcClient.Call<dev.isthmus.lite.trust.v1.WatchBundleRequest> watch = client.call(WATCH_BUNDLE, dev.isthmus.lite.trust.v1.TrustBundle.parser(), null,
                new GrpcClient.Listener<dev.isthmus.lite.trust.v1.TrustBundle>() {
                    @Override
                    public void onMessage(dev.isthmus.lite.trust.v1.TrustBundle bundle) {
                        try {
                            var roots = parseBundle(bundle);
                            Svid now = current.get();
                            if (now != null && !now.bundle().equals(roots)) {
                                Svid updated = new Svid(now.spiffeId(), now.key(), now.certificate(), now.chain(), roots, now.notAfter());
                                current.set(updated);
                                log.info("event=trust_bundle_updated sequence={} trust_domains={} roots={}", bundle.getSequence(), roots.size(),
                                        updated.trustRoots().size());
                                listeners.forEach(l -> l.accept(updated));
                            }
                        } catch (Exception e) {
                            log.warn("event=trust_bundle_unreadable cause={}", e.toString());
                        }
                    }

                    @Override
                    public void onClose(GrpcStatus status) {
                        rewatch();
                    }
                });
        watch.send(dev.isthmus.lite.trust.v1.WatchBundleRequest.newBuilder().setCredential(credential.get()).build());
        watch.halfClose();
    }

    private void rewatch() {
        watching = false;
        if (!timer.isShutdown()) {
            timer.schedule(this::watchBundle, 5, TimeUnit.SECONDS);
        }
    }

    private Svid fetch() {
        try {
            var generator = KeyPairGenerator.getInstance("EC");
            generator.initialize(new ECGenParameterSpec("secp256r1"));
            KeyPair pair = generator.generateKeyPair();
            String pem = Csr.pem(pair, spiffeId);
            IssueResponse res = client.unary(ISSUE, IssueRequest.newBuilder().setCsrPem(pem).setSpiffeId(spiffeId).setCredential(credential.get())
                    .setTtlSeconds(ttl.toSeconds()).build(), IssueResponse.parser(), Duration.ofSeconds(10));
            X509Certificate cert = parse(res.getCertificatePem());
            if (!cert.getPublicKey().equals(pair.getPublic())) {
                throw new IllegalStateException("the bridge returned a certificate for another key");
            }
            var chain = new ArrayList<X509Certificate>();
            for (String c : res.getChainPemList()) {
                chain.add(parse(c));
            }
            var roots = parseBundle(res.getBundle());
            if (chain.isEmpty()) {
                throw new IllegalStateException("the bridge returned no issuing chain");
            }
            cert.verify(chain.get(0).getPublicKey());
            return new Svid(spiffeId, pair.getPrivate(), cert, chain, roots, cert.getNotAfter().toInstant());
        } catch (GrpcException | IllegalStateException e) {
            throw e;
        } catch (Exception e) {
            throw new IllegalStateException("cannot make or check the certificate: " + e.getMessage(), e);
        }
    }

    private static Map<String, List<X509Certificate>> parseBundle(dev.isthmus.lite.trust.v1.TrustBundle bundle) throws Exception {
        var out = new java.util.TreeMap<String, List<X509Certificate>>();
        for (var e : bundle.getRootsMap().entrySet()) {
            var certs = new ArrayList<X509Certificate>();
            for (String c : e.getValue().getCertificatePemList()) {
                certs.add(parse(c));
            }
            out.put(e.getKey(), List.copyOf(certs));
        }
        return out;
    }

    private static X509Certificate parse(String pem) throws Exception {
        return (X509Certificate) CertificateFactory.getInstance("X.509")
                .generateCertificate(new ByteArrayInputStream(pem.getBytes(StandardCharsets.US_ASCII)));
    }

    @Override
    public void close() {
        timer.shutdownNow();
        client.close();
    }
}
