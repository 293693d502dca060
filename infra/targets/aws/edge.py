"""What puts a site of the aws target on the internet: an ACM certificate of its name,
validated through Route 53, and the name's record pointing at the ALB its ingress gets."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s


def certificate(
    base: str,
    domain: str,
    zone_id: pulumi.Input[str],
    tags: dict[str, str],
    parent: pulumi.Resource,
) -> tuple[aws.acm.Certificate, pulumi.Output[str]]:
    """The certificate of ``domain`` and its ARN once ACM has validated it by DNS."""
    child = pulumi.ResourceOptions(parent=parent)
    made = aws.acm.Certificate(
        f"{base}-certificate",
        domain_name=domain,
        validation_method="DNS",
        tags=tags,
        opts=child,
    )
    option = made.domain_validation_options[0]
    proof = aws.route53.Record(
        f"{base}-certificate-validation",
        zone_id=zone_id,
        name=option.resource_record_name,
        type=option.resource_record_type,
        records=[option.resource_record_value],
        ttl=300,
        allow_overwrite=True,
        opts=child,
    )
    validated = aws.acm.CertificateValidation(
        f"{base}-certificate-validated",
        certificate_arn=made.arn,
        validation_record_fqdns=[proof.fqdn],
        opts=child,
    )
    return made, validated.certificate_arn


def record_to_ingress(
    base: str,
    domain: str,
    zone_id: pulumi.Input[str],
    ingress: str,  # namespace/name of the release's Ingress
    release: pulumi.Resource,
    provider: pulumi.ProviderResource | None,
    parent: pulumi.Resource,
) -> aws.route53.Record:
    """``domain`` as a CNAME of the ALB the AWS Load Balancer Controller made for ``ingress``."""
    found = k8s.networking.v1.Ingress.get(
        f"{base}-ingress",
        ingress,
        opts=pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=[release]),
    )
    return aws.route53.Record(
        f"{base}-record",
        zone_id=zone_id,
        name=domain,
        type="CNAME",
        ttl=300,
        records=[found.status.load_balancer.ingress[0].hostname],
        opts=pulumi.ResourceOptions(parent=parent),
    )


def alb_annotations(certificate_arn: str) -> dict[str, str]:
    """An internet-facing ALB sending to the pods (ip targets), HTTPS only, with the
    certificate and a TLS 1.2+ policy."""
    return {
        "alb.ingress.kubernetes.io/scheme": "internet-facing",
        "alb.ingress.kubernetes.io/target-type": "ip",
        "alb.ingress.kubernetes.io/listen-ports": '[{"HTTPS": 443}]',
        "alb.ingress.kubernetes.io/certificate-arn": certificate_arn,
        "alb.ingress.kubernetes.io/ssl-policy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
    }


def namespace(
    name: str, resource: str, tags: dict[str, str], opts: pulumi.ResourceOptions
) -> k8s.core.v1.Namespace:
    """A namespace enforcing the restricted Pod Security Standard, as the charts expect."""
    return k8s.core.v1.Namespace(
        resource,
        metadata={
            "name": name,
            "labels": {
                **tags,
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
        },
        opts=opts,
    )
