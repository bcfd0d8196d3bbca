# The federation-controller image. Build context: the repository's root, after the build
# (./mvnw -B package -DskipTests): docker build -f deploy/kubernetes/images/federation-controller.Dockerfile -t REGISTRY/isthmus/federation-controller:0.1.0 .
# e2e KubernetesDeploymentIT lays out this image's files as the COPY lines say and runs its ENTRYPOINT.
FROM eclipse-temurin:21-jre
COPY federation-controller/target/quarkus-app/ /opt/isthmus/federation-controller/
WORKDIR /opt/isthmus/federation-controller
USER 10001
ENTRYPOINT ["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:+ExitOnOutOfMemoryError", "-XX:+UnlockExperimentalVMOptions", "-XX:TrimNativeHeapInterval=1000", "-jar", "/opt/isthmus/federation-controller/quarkus-run.jar"]
