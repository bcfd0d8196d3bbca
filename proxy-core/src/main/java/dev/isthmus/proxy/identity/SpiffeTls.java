package dev.isthmus.proxy.identity;

import java.net.Socket;
import java.security.GeneralSecurityException;
import java.security.Principal;
import java.security.PrivateKey;
import java.security.cert.CertPathValidator;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.CertificateParsingException;
import java.security.cert.PKIXParameters;
import java.security.cert.TrustAnchor;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.Predicate;
import java.util.function.Supplier;
import javax.net.ssl.KeyManager;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.TrustManager;
import javax.net.ssl.X509ExtendedKeyManager;
import javax.net.ssl.X509ExtendedTrustManager;

/**
 * mTLS with X.509 SVIDs for the JDK's TLS (and for Netty, which takes the same managers): the key
 * manager presents the workload's current certificate at every handshake, so a renewal or a root
 * rotation needs no restart; the trust manager accepts a peer only if its chain verifies against
 * the federated bundle's roots <em>for the trust domain named in the peer's own SPIFFE ID</em> (a
 * root of one domain never vouches for another's IDs), the leaf is not a CA, it carries exactly
 * one SPIFFE ID, and that ID is one the caller expects.
 */
public final class SpiffeTls {

    private SpiffeTls() {
    }

    /** The SPIFFE ID of a leaf certificate: its one {@code spiffe://} URI SAN. */
    public static Optional<String> spiffeId(X509Certificate leaf) {
        try {
            var sans = leaf.getSubjectAlternativeNames();
            if (sans == null) {
                return Optional.empty();
            }
            String found = null;
            for (List<?> san : sans) {
                if (Integer.valueOf(6).equals(san.get(0)) && san.get(1) instanceof String uri && uri.startsWith("spiffe://")) {
                    if (found != null) {
                        return Optional.empty(); // more than one SPIFFE ID: not an SVID
                    }
                    found = uri;
                }
            }
            return Optional.ofNullable(found);
        } catch (CertificateParsingException e) {
            return Optional.empty();
        }
    }

    /** The trust domain of a SPIFFE ID ({@code spiffe://<domain>/...}). */
    public static String trustDomain(String spiffeId) {
        String rest = spiffeId.substring("spiffe://".length());
        int slash = rest.indexOf('/');
        return slash < 0 ? rest : rest.substring(0, slash);
    }

    /** An SSL context (TLS 1.3 and 1.2) that presents {@code source}'s SVID and accepts peers whose ID {@code peerAllowed} accepts. */
    public static SSLContext context(Supplier<Optional<SvidClient.Svid>> source, Predicate<String> peerAllowed) throws GeneralSecurityException {
        var ctx = SSLContext.getInstance("TLS");
        ctx.init(new KeyManager[] {keyManager(source)}, new TrustManager[] {trustManager(source, peerAllowed)}, null);
        return ctx;
    }

    /**
     * Presents the SVID current at the time of each handshake. The alias names the certificate's
     * serial, so a handshake that started with one certificate finishes with its own key even if a
     * renewal lands in between.
     */
    public static X509ExtendedKeyManager keyManager(Supplier<Optional<SvidClient.Svid>> source) {
        return new X509ExtendedKeyManager() {
            private final Map<String, SvidClient.Svid> recent = java.util.Collections.synchronizedMap(new LinkedHashMap<>(8, 0.75f, true) {
                @Override
                protected boolean removeEldestEntry(Map.Entry<String, SvidClient.Svid> eldest) {
                    return size() > 4;
                }
            });

            private String alias(String[] keyTypes) {
                var svid = source.get().orElse(null);
                if (svid == null) {
                    return null;
                }
                if (keyTypes != null) {
                    String algorithm = svid.key().getAlgorithm();
                    boolean match = false;
                    for (String t : keyTypes) {
                        match |= t == null || t.equalsIgnoreCase(algorithm) || t.startsWith(algorithm + "_") || t.equalsIgnoreCase("EC_EC");
                    }
                    if (!match) {
                        return null;
                    }
                }
                String alias = "svid-" + svid.certificate().getSerialNumber().toString(16);
                recent.put(alias, svid);
                return alias;
            }

            @Override
            public String[] getClientAliases(String keyType, Principal[] issuers) {
                String a = alias(new String[] {keyType});
                return a == null ? null : new String[] {a};
            }

            @Override
            public String chooseClientAlias(String[] keyType, Principal[] issuers, Socket socket) {
                return alias(keyType);
            }

            @Override
            public String chooseEngineClientAlias(String[] keyType, Principal[] issuers, SSLEngine engine) {
                return alias(keyType);
            }

            @Override
            public String[] getServerAliases(String keyType, Principal[] issuers) {
                return getClientAliases(keyType, issuers);
            }

            @Override
            public String chooseServerAlias(String keyType, Principal[] issuers, Socket socket) {
                return alias(new String[] {keyType});
            }

            @Override
            public String chooseEngineServerAlias(String keyType, Principal[] issuers, SSLEngine engine) {
                return alias(new String[] {keyType});
            }

            @Override
            public X509Certificate[] getCertificateChain(String alias) {
                var svid = recent.get(alias);
                if (svid == null) {
                    return null;
                }
                var chain = new ArrayList<X509Certificate>();
                chain.add(svid.certificate());
                for (var c : svid.chain()) {
                    if (!c.getSubjectX500Principal().equals(c.getIssuerX500Principal())) {
                        chain.add(c); // intermediates only: the peer has the roots in its bundle
                    }
                }
                return chain.toArray(X509Certificate[]::new);
            }

            @Override
            public PrivateKey getPrivateKey(String alias) {
                var svid = recent.get(alias);
                return svid == null ? null : svid.key();
            }
        };
    }

    /**
     * Accepts a peer chain only if it verifies (PKIX, no revocation) against the current bundle's
     * roots for the peer's own trust domain, and {@code peerAllowed} accepts the peer's SPIFFE ID.
     * Every refusal says why.
     */
    public static X509ExtendedTrustManager trustManager(Supplier<Optional<SvidClient.Svid>> source, Predicate<String> peerAllowed) {
        return new X509ExtendedTrustManager() {
            private void check(X509Certificate[] chain) throws CertificateException {
                if (chain == null || chain.length == 0) {
                    throw new CertificateException("the peer sent no certificate");
                }
                X509Certificate leaf = chain[0];
                String id = spiffeId(leaf).orElseThrow(() -> new CertificateException("the peer's certificate (" + leaf.getSubjectX500Principal()
                        + ") carries no single SPIFFE ID"));
                if (leaf.getBasicConstraints() >= 0) {
                    throw new CertificateException("the peer's certificate for " + id + " is a CA certificate, not a workload certificate");
                }
                var svid = source.get().orElseThrow(() -> new CertificateException("this workload has no trust bundle yet"));
                String domain = trustDomain(id);
                List<X509Certificate> roots = svid.roots(domain);
                if (roots.isEmpty()) {
                    throw new CertificateException("no trusted roots for trust domain '" + domain + "' (peer " + id
                            + "); it is not in the federated bundle");
                }
                try {
                    Set<TrustAnchor> anchors = new HashSet<>();
                    for (var r : roots) {
                        anchors.add(new TrustAnchor(r, null));
                    }
                    var path = new ArrayList<X509Certificate>();
                    for (var c : chain) {
                        if (!c.getSubjectX500Principal().equals(c.getIssuerX500Principal())) {
                            path.add(c); // self-signed roots sent by the peer are not part of the path
                        }
                    }
                    var params = new PKIXParameters(anchors);
                    params.setRevocationEnabled(false);
                    CertPathValidator.getInstance("PKIX").validate(CertificateFactory.getInstance("X.509").generateCertPath(path), params);
                } catch (GeneralSecurityException e) {
                    throw new CertificateException("the certificate of " + id + " does not verify against the " + roots.size()
                            + " root(s) of trust domain '" + domain + "': " + e.getMessage(), e);
                }
                if (!peerAllowed.test(id)) {
                    throw new CertificateException("peer " + id + " is not the identity expected here");
                }
            }

            @Override
            public void checkClientTrusted(X509Certificate[] chain, String authType) throws CertificateException {
                check(chain);
            }

            @Override
            public void checkServerTrusted(X509Certificate[] chain, String authType) throws CertificateException {
                check(chain);
            }

            @Override
            public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket) throws CertificateException {
                check(chain);
            }

            @Override
            public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket) throws CertificateException {
                check(chain);
            }

            @Override
            public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine) throws CertificateException {
                check(chain);
            }

            @Override
            public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine) throws CertificateException {
                check(chain);
            }

            @Override
            public X509Certificate[] getAcceptedIssuers() {
                return source.get().map(s -> s.trustRoots().toArray(X509Certificate[]::new)).orElse(new X509Certificate[0]);
            }
        };
    }
}
