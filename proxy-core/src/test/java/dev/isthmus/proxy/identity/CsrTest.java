package dev.isthmus.proxy.identity;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.security.KeyPairGenerator;
import java.security.spec.ECGenParameterSpec;
import org.bouncycastle.asn1.pkcs.PKCSObjectIdentifiers;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.Extensions;
import org.bouncycastle.asn1.x509.ExtensionsGenerator;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.bouncycastle.operator.jcajce.JcaContentVerifierProviderBuilder;
import org.bouncycastle.pkcs.PKCS10CertificationRequest;
import org.bouncycastle.pkcs.jcajce.JcaPKCS10CertificationRequestBuilder;
import org.junit.jupiter.api.Test;

/** The hand-written CSR, read back with BouncyCastle and compared with what its PKCS#10 builder makes. */
class CsrTest {

    @Test
    void theRequestIsWhatBouncyCastlesBuilderMakesAndItsSignatureHolds() throws Exception {
        var generator = KeyPairGenerator.getInstance("EC");
        generator.initialize(new ECGenParameterSpec("secp256r1"));
        var pair = generator.generateKeyPair();
        // long enough that the SAN and the request info need long-form DER lengths
        String id = "spiffe://us-east.acme.isthmus/ns/shop/sa/" + "product-catalog-".repeat(12) + "v2";

        String pem = Csr.pem(pair, id);
        assertTrue(pem.startsWith("-----BEGIN CERTIFICATE REQUEST-----\n") && pem.endsWith("\n-----END CERTIFICATE REQUEST-----\n"), pem);
        PKCS10CertificationRequest csr;
        try (var parser = new PEMParser(new java.io.StringReader(pem))) {
            csr = (PKCS10CertificationRequest) parser.readObject();
        }
        assertTrue(csr.isSignatureValid(new JcaContentVerifierProviderBuilder().build(pair.getPublic())), "signed with the key");
        assertEquals(new X500Name("CN=workload"), csr.getSubject());
        var requested = Extensions.getInstance(csr.getAttributes(PKCSObjectIdentifiers.pkcs_9_at_extensionRequest)[0].getAttrValues().getObjectAt(0));
        var san = requested.getExtension(Extension.subjectAlternativeName);
        assertTrue(san.isCritical());
        assertEquals(new GeneralNames(new GeneralName(GeneralName.uniformResourceIdentifier, id)), GeneralNames.getInstance(san.getParsedValue()));

        var ext = new ExtensionsGenerator();
        ext.addExtension(Extension.subjectAlternativeName, true, new GeneralNames(new GeneralName(GeneralName.uniformResourceIdentifier, id)));
        var expected = new JcaPKCS10CertificationRequestBuilder(new X500Name("CN=workload"), pair.getPublic())
                .addAttribute(PKCSObjectIdentifiers.pkcs_9_at_extensionRequest, ext.generate())
                .build(new JcaContentSignerBuilder("SHA256withECDSA").build(pair.getPrivate()));
        assertArrayEquals(expected.toASN1Structure().getCertificationRequestInfo().getEncoded("DER"),
                csr.toASN1Structure().getCertificationRequestInfo().getEncoded("DER"), "the signed part, byte for byte");
        assertEquals(expected.getSignatureAlgorithm(), csr.getSignatureAlgorithm());
    }
}
