package dev.isthmus.trust.grpc;

import dev.isthmus.api.trust.v1.IssueRequest;
import dev.isthmus.api.trust.v1.IssueResponse;
import dev.isthmus.api.trust.v1.RootCertificates;
import dev.isthmus.api.trust.v1.TrustBundle;
import dev.isthmus.api.trust.v1.WatchBundleRequest;
import dev.isthmus.api.trust.v1.WorkloadCertificatesGrpc;
import dev.isthmus.trust.TrustBridgeConfig;
import dev.isthmus.trust.ca.SvidIssuer;
import dev.isthmus.trust.ca.TrustDomainCa;
import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.grpc.GrpcService;
import java.io.IOException;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.jboss.logging.Logger;

/**
 * The WorkloadCertificates gRPC service (mesh-api's {@code isthmus/trust/v1/workload_certificates.proto}):
 * a proxy presents the cluster's bootstrap credential and a CSR for its SPIFFE ID and gets an X.509
 * SVID. Refusals carry a precise status and message (see {@link SvidIssuer}) and are counted in
 * {@code isthmus_svid_refused_total{reason}}; issued certificates in {@code isthmus_svid_issued_total}.
 */
@GrpcService
public class WorkloadCertificatesService extends WorkloadCertificatesGrpc.WorkloadCertificatesImplBase {

    private static final Logger LOG = Logger.getLogger(WorkloadCertificatesService.class);

    private final TrustDomainCa ca;
    private final TrustBridgeConfig config;
    private final MeterRegistry meters;
    private final byte[] credential;
    private final List<StreamObserver<TrustBundle>> watchers = new CopyOnWriteArrayList<>();

    private final ServiceAccountTokens serviceAccounts;

    @jakarta.inject.Inject
    dev.isthmus.trust.ca.FederatedRoots federated;

    @jakarta.inject.Inject
    org.eclipse.microprofile.context.ManagedExecutor workers;

    @jakarta.inject.Inject
    public WorkloadCertificatesService(TrustDomainCa ca, TrustBridgeConfig config, MeterRegistry meters) {
        this(ca, config, meters, config.bootstrap().kubernetes()
                ? new ServiceAccountTokens(new io.fabric8.kubernetes.client.KubernetesClientBuilder().build(),
                        config.bootstrap().kubernetesAudiences().orElse(List.of()))
                : null);
    }

    WorkloadCertificatesService(TrustDomainCa ca, TrustBridgeConfig config, MeterRegistry meters, ServiceAccountTokens serviceAccounts) {
        this.ca = ca;
        this.config = config;
        this.meters = meters;
        this.credential = loadCredential(config);
        this.serviceAccounts = serviceAccounts;
    }

    private static byte[] loadCredential(TrustBridgeConfig config) {
        String secret;
        try {
            secret = dev.isthmus.trust.Secrets.read(config.bootstrap().token(), config.bootstrap().tokenFile(), true);
        } catch (IOException e) {
            throw new IllegalStateException("the bootstrap credential cannot be read: " + e.getMessage(), e);
        }
        if (secret == null) {
            LOG.warn("event=no_bootstrap_credential (isthmus.bootstrap.token or token-file): every certificate request is refused");
            return null;
        }
        return secret.getBytes(StandardCharsets.UTF_8);
    }

    /**
     * Checks the credential; returns the one SPIFFE ID it may have, or null when it is the cluster's
     * bootstrap secret (which may have any ID of the trust domain).
     */
    private String checkCredential(String presented) throws SvidIssuer.Refusal {
        if (serviceAccounts != null && ServiceAccountTokens.looksLikeJwt(presented)) {
            return serviceAccounts.allowedId(presented, ca.trustDomain());
        }
        if (credential == null) {
            throw new SvidIssuer.Refusal(Status.Code.UNAUTHENTICATED, "no_credential_configured",
                    "this bridge has no bootstrap credential configured (isthmus.bootstrap.token-file); it issues nothing");
        }
        if (presented == null || presented.isBlank()) {
            throw new SvidIssuer.Refusal(Status.Code.UNAUTHENTICATED, "missing_credential",
                    "credential is empty; send the cluster's bootstrap credential");
        }
        if (!MessageDigest.isEqual(credential, presented.strip().getBytes(StandardCharsets.UTF_8))) {
            throw new SvidIssuer.Refusal(Status.Code.UNAUTHENTICATED, "unknown_credential",
                    "the credential is not this cluster's bootstrap credential");
        }
        return null;
    }

    /**
     * Issues on the transport thread when the work is CPU only (the embedded backend and the
     * cluster's bootstrap credential: about half a millisecond, like a TLS handshake), and on a
     * worker when it waits on I/O (Vault, a Kubernetes TokenReview).
     */
    @Override
    public void issue(IssueRequest request, StreamObserver<IssueResponse> response) {
        var backend = ca.backend();
        boolean inline = backend.isPresent() && backend.get().signsInProcess()
                && (serviceAccounts == null || !ServiceAccountTokens.looksLikeJwt(request.getCredential()));
        if (inline) {
            issueNow(request, response);
        } else {
            workers.execute(() -> issueNow(request, response));
        }
    }

    private void issueNow(IssueRequest request, StreamObserver<IssueResponse> response) {
        try {
            String allowed = checkCredential(request.getCredential());
            var backend = ca.backend().orElseThrow(() -> new SvidIssuer.Refusal(Status.Code.UNAVAILABLE, "ca_not_ready",
                    "the CA backend is not ready: " + ca.lastError()));
            String id = SvidIssuer.checkSpiffeId(request.getSpiffeId(), ca.trustDomain());
            if (allowed != null && !allowed.equals(id)) {
                throw new SvidIssuer.Refusal(Status.Code.PERMISSION_DENIED, "id_not_allowed", "the service-account token may have only "
                        + allowed + ", not " + id);
            }
            if (request.getTtlSeconds() < 0) {
                throw new SvidIssuer.Refusal(Status.Code.INVALID_ARGUMENT, "bad_ttl", "ttl_seconds is negative: " + request.getTtlSeconds());
            }
            Duration ttl = request.getTtlSeconds() == 0 ? config.ca().svidTtl() : Duration.ofSeconds(request.getTtlSeconds());
            if (ttl.compareTo(config.ca().maxSvidTtl()) > 0) {
                ttl = config.ca().maxSvidTtl();
            }
            var key = SvidIssuer.checkCsr(request.getCsrPem(), id);
            var issued = backend.sign(request.getCsrPem(), key, id, ttl);
            meters.counter("isthmus_svid_issued", "backend", backend.name()).increment();
            LOG.debugf("event=svid_issued spiffe_id=%s serial=%s not_after=%s backend=%s", id, issued.certificate().getSerialNumber().toString(16),
                    issued.certificate().getNotAfter().toInstant(), backend.name());
            var answer = IssueResponse.newBuilder().setCertificatePem(pem(issued.certificate())).setBundle(bundle())
                    .setNotAfterUnix(issued.certificate().getNotAfter().toInstant().getEpochSecond());
            issued.chain().forEach(c -> answer.addChainPem(pemCached(c)));
            response.onNext(answer.build());
            response.onCompleted();
        } catch (SvidIssuer.Refusal r) {
            meters.counter("isthmus_svid_refused", "reason", r.reason()).increment();
            LOG.warnf("event=svid_refused reason=%s status=%s detail=\"%s\"", r.reason(), r.code(), r.getMessage());
            response.onError(r.toStatus());
        }
    }

    @Override
    public void watchBundle(WatchBundleRequest request, StreamObserver<TrustBundle> response) {
        try {
            checkCredential(request.getCredential());
        } catch (SvidIssuer.Refusal r) {
            meters.counter("isthmus_svid_refused", "reason", r.reason()).increment();
            response.onError(r.toStatus());
            return;
        }
        if (ca.backend().isEmpty()) {
            response.onError(Status.UNAVAILABLE.withDescription("the CA is not loaded yet").asRuntimeException());
            return;
        }
        response.onNext(bundle());
        watchers.add(response);
        if (response instanceof ServerCallStreamObserver<TrustBundle> server) {
            server.setOnCancelHandler(() -> watchers.remove(response));
        }
    }

    /** Sends the current bundle to every open watch (after a root change). */
    void bundleChanged(@jakarta.enterprise.event.Observes TrustDomainCa.BundleChanged change) {
        TrustBundle b = bundle();
        for (var w : watchers) {
            try {
                w.onNext(b);
            } catch (RuntimeException e) {
                watchers.remove(w);
            }
        }
    }

    private final java.util.Map<java.security.cert.X509Certificate, String> pemCache = new java.util.concurrent.ConcurrentHashMap<>();
    private volatile TrustBundle cachedBundle;
    private volatile long cachedSequence = -1;

    /** Root certificates are PEM-encoded once. */
    private String pemCached(java.security.cert.X509Certificate c) {
        if (pemCache.size() > 64) {
            pemCache.clear();
        }
        return pemCache.computeIfAbsent(c, WorkloadCertificatesService::pem);
    }

    /** The bundle, rebuilt only when its sequence changed. */
    private TrustBundle bundle() {
        long seq = ca.rotation().sequence() + federated.version();
        TrustBundle b = cachedBundle;
        if (b != null && cachedSequence == seq) {
            return b;
        }
        b = buildBundle();
        cachedBundle = b;
        cachedSequence = seq;
        return b;
    }

    private TrustBundle buildBundle() {
        var roots = RootCertificates.newBuilder();
        ca.backend().orElseThrow().roots().forEach(r -> roots.addCertificatePem(pem(r)));
        var bundle = TrustBundle.newBuilder().setTrustDomain(ca.trustDomain()).setSequence(ca.rotation().sequence() + federated.version())
                .putRoots(ca.trustDomain(), roots.build());
        federated.roots().forEach((td, certs) -> {
            var other = RootCertificates.newBuilder();
            certs.forEach(c -> other.addCertificatePem(pem(c)));
            bundle.putRoots(td, other.build());
        });
        return bundle.build();
    }

    private static String pem(Object o) {
        var out = new StringWriter();
        try (var writer = new JcaPEMWriter(out)) {
            writer.writeObject(o);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        return out.toString();
    }
}
