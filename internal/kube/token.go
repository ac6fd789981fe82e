package kube

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// ServiceAccountToken waits until the token controller has filled the
// service-account-token Secret namespace/name and returns its token and
// the cluster's CA (the controller writes both in one update).
func ServiceAccountToken(ctx context.Context, cs kubernetes.Interface, namespace, name string, timeout time.Duration) (token, ca []byte, err error) {
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		s, gerr := cs.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
		if gerr != nil {
			return false, nil
		}
		token, ca = s.Data[corev1.ServiceAccountTokenKey], s.Data[corev1.ServiceAccountRootCAKey]
		return len(token) > 0 && len(ca) > 0, nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("the token controller did not fill %s/%s: %w", namespace, name, err)
	}
	return token, ca, nil
}
