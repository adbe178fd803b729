from django.http import HttpRequest, JsonResponse
from django.urls import path

from exam_app.users.models import Attempt


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True, "attempts": Attempt.objects.count()})


urlpatterns = [path("", health), path("health", health)]
