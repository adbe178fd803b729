from celery import shared_task
from django.db import connection

from .models import Payment


@shared_task
def charge(order_id: str) -> int:
    # The order number comes from the PostgreSQL sequence of migration 0002.
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval('orders_number_seq')")
        (number,) = cursor.fetchone()
    Payment.objects.create(order_id=order_id)
    return int(number)
