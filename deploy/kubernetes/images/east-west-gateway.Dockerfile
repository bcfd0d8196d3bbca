# The east-west gateway image. Build context: the repository's root, after the build
# (./mvnw -B package -DskipTests): docker build -f deploy/kubernetes/images/east-west-gateway.Dockerfile -t REGISTRY/isthmus/east-west-gateway:0.1.0 .
# e2e KubernetesDeploymentIT lays out this image's files as the COPY lines say and runs its ENTRYPOINT.
FROM eclipse-temurin:21-jre
COPY east-west-gateway/target/east-west-gateway.jar /opt/isthmus/east-west-gateway/
COPY east-west-gateway/target/lib/ /opt/isthmus/east-west-gateway/lib/
WORKDIR /opt/isthmus/east-west-gateway
USER 10001
ENTRYPOINT ["java", "-Xms32m", "-Xmx128m", "-XX:+UseSerialGC", "-XX:+ExitOnOutOfMemoryError", "-XX:+UnlockExperimentalVMOptions", "-XX:TrimNativeHeapInterval=1000", "-jar", "/opt/isthmus/east-west-gateway/east-west-gateway.jar"]
