from django.apps import AppConfig


class UsersConfig(AppConfig):
    name = "exam_app.users"
    label = "users"
