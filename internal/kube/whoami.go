package kube

import (
	"context"
	"errors"
	"fmt"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// WhoAmI asks a cluster who the caller is (a SelfSubjectReview): the name
// admission policies compare with request.userInfo.username.
func WhoAmI(cs kubernetes.Interface) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			return "", fmt.Errorf("who am I on the hub: %w", err)
		}
		if r.Status.UserInfo.Username == "" {
			return "", errors.New("who am I on the hub: no user name in the SelfSubjectReview")
		}
		return r.Status.UserInfo.Username, nil
	}
}
